"""Payments: probabilistic micropayment tickets (the protocol's TicketBroker, go-livepeer's pm/)."""
