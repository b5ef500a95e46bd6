"""Data for monitoring hosts. Other hosts admit them on 7935 (lpnode admin/metrics) and 9100
(node exporter) by address, so a monitoring host's address must be an IP address (set
`address` if ssh_hostname is a name)."""
