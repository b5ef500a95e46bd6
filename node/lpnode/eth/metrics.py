"""Prometheus metrics of the chain and the reward service; the names monitoring/rules/onchain.yml
reserved (go-livepeer's where it has them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ChainMetrics:
    def __init__(self, registry: CollectorRegistry, node_type: str) -> None:
        labels = ["node_type"]
        self.round = Gauge("lpfleet_round_current", "RoundsManager.currentRound()", labels,
                           registry=registry).labels(node_type)
        self.round_initialized = Gauge("lpfleet_round_initialized", "1 if the current round is initialized",
                                       labels, registry=registry).labels(node_type)
        self.round_start = Gauge("lpfleet_round_start_timestamp_seconds",
                                 "When this node first saw the current round (Unix time)", labels,
                                 registry=registry).labels(node_type)
        self.round_start_block = Gauge("lpfleet_round_start_block", "RoundsManager.currentRoundStartBlock()",
                                       labels, registry=registry).labels(node_type)
        self.round_length = Gauge("lpfleet_round_length_blocks", "RoundsManager.roundLength()", labels,
                                  registry=registry).labels(node_type)
        self.last_block = Gauge("lpfleet_chain_last_block_timestamp_seconds",
                                "When this node last saw a new block (Unix time)", labels,
                                registry=registry).labels(node_type)
        self.block = Gauge("lpfleet_chain_block", "The newest block number seen", labels,
                           registry=registry).labels(node_type)
        self.last_reward_round = Gauge("lpfleet_reward_last_round",
                                       "The orchestrator's lastRewardRound on chain", labels,
                                       registry=registry).labels(node_type)
        self._reward_calls = Counter("lpfleet_reward_calls", "reward() transactions, by result",
                                     ["node_type", "result"], registry=registry)
        self.reward_calls = {r: self._reward_calls.labels(node_type, r) for r in ("mined", "failed")}
        self.reward_errors = Counter("livepeer_reward_call_errors", "Failed reward() attempts", labels,
                                     registry=registry).labels(node_type)
        self.minted = Counter("lpfleet_reward_minted_wei", "LPT minted by this node's reward calls (wei)",
                              labels, registry=registry).labels(node_type)
        self.gas_spent = Counter("lpfleet_gas_spent_wei", "ETH spent on gas by this node's account (wei)",
                                 labels, registry=registry).labels(node_type)
        self.reward_gas = Gauge("lpfleet_reward_last_gas_wei", "What the last reward transaction cost in gas (wei)",
                                labels, registry=registry).labels(node_type)
        self.balance = Gauge("lpfleet_account_balance_wei", "The node account's ETH balance (wei)", labels,
                             registry=registry).labels(node_type)
        self.rpc_errors = Counter("lpfleet_rpc_errors", "JSON-RPC requests that failed", labels,
                                  registry=registry).labels(node_type)
        self.rpc_up = Gauge("lpfleet_rpc_up", "1 while the -ethUrl endpoint answers", labels,
                            registry=registry).labels(node_type)
