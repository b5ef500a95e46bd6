"""pyinfra roles for an lpfleet fleet: one ``@deploy`` per role, composed by deploys/fleet.py.

Each role takes typed keyword arguments with documented defaults; deploys/fleet.py fills them
from inventory data (``<prefix><argument>``, see ``role_kwargs`` there) so a role can also be
used on its own from another deploy.
"""
