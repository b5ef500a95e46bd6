"""On chain: the protocol contracts' interfaces, the node's account, transactions, the reward
service (go-livepeer's eth/ package)."""
