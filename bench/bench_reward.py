"""Blocks from a round's initialization to the reward transaction being mined.

    .venv/bin/python bench/bench_reward.py [--rounds 10] [--block-time 1] [--no-doc]

On a local chain mining a block every --block-time seconds (round length 20), two registered
orchestrators:

- lpnode: `lpnode -reward -initializeRound -initializeRoundMaxDelay 0s -blockPollingInterval 1`
  for account 1 (it also initializes each round);
- baseline: the fastest reward caller possible, a loop in this process that reads the chain
  every 0.1 s and sends reward() for account 2 as soon as the round is initialized.

For each round: the block of its NewRound event, and the block of each orchestrator's Reward
event. Prints median and p90 of the difference and rewrites the "## Reward latency" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import benchdoc  # noqa: E402  bench/: the shared docs/benchmarks.md writer

from tests.support.fleet import Fleet  # noqa: E402
from tests.support.localchain import LocalChain  # noqa: E402

SECTION = "## Reward latency"


def baseline_caller(chain: LocalChain, address: str, stop: threading.Event) -> None:
    bonding, rounds = chain.bonding.functions, chain.rounds.functions
    while not stop.is_set():
        try:
            current = rounds.currentRound().call()
            if (rounds.currentRoundInitialized().call() and bonding.isActiveTranscoder(address).call()
                    and bonding.getTranscoder(address).call()[0] < current):
                tx = bonding.reward().transact({"from": address})
                chain.w3.eth.wait_for_transaction_receipt(tx)
        except Exception:  # noqa: BLE001 - a race with the round: try again
            pass
        stop.wait(0.1)


def p90(values: list[int]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else float(values[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block-time", type=int, default=1)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        chain = LocalChain(tmp)
        fleet = Fleet(tmp)
        stop = threading.Event()
        try:
            orch, base = chain.register(1), chain.register(2)
            answer = chain.w3.provider.make_request("evm_setIntervalMining", [max(1, int(args.block_time))])  # type: ignore[arg-type]
            if "error" in answer:
                sys.exit(f"evm_setIntervalMining: {answer}")
            node = fleet.start("reward-1", "-reward", "-initializeRound", "-initializeRoundMaxDelay", "0s",
                               "-blockPollingInterval", "1", *chain.flags(1))
            threading.Thread(target=baseline_caller, args=(chain, base, stop), daemon=True).start()
            first = chain.current_round() + 2  # both active from the next round; measure whole rounds
            last = first + args.rounds - 1
            deadline = time.monotonic() + (args.rounds + 3) * 20 * args.block_time * 3
            while chain.last_reward_round(orch) < last or chain.last_reward_round(base) < last:
                if time.monotonic() > deadline or node.popen.poll() is not None:
                    sys.exit(f"rewards did not arrive:\n{node.log()[-3000:]}")
                time.sleep(1)
            new_rounds = {e["args"]["round"]: e["blockNumber"]
                          for e in chain.rounds.events.NewRound().get_logs(from_block=0)}
            results = {}
            for name, address in (("lpnode", orch), ("baseline", base)):
                blocks = {e["blockNumber"] for e in chain.reward_events(address)}
                by_round = {}
                for r in range(first, last + 1):
                    start = new_rounds[r]
                    by_round[r] = min(b for b in blocks if b >= start) - start
                results[name] = list(by_round.values())
        finally:
            stop.set()
            fleet.stop()
            chain.close()

    lines = [f"{name:10} median {statistics.median(v):.1f} blocks, p90 {p90(v):.1f} blocks ({v})"
             for name, v in results.items()]
    print("\n".join(lines))
    if not args.no_doc:
        lp, base_v = results["lpnode"], results["baseline"]
        text = "\n".join([
            SECTION,
            "",
            "Written by `bench/bench_reward.py`; rerun it to refresh this section.",
            "",
            f"- Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
            f"{datetime.date.today()}",
            f"- Local chain: a block every {args.block_time:g} s, rounds of 20 blocks, {args.rounds} rounds",
            "- lpnode: `lpnode -reward -initializeRound -initializeRoundMaxDelay 0s -blockPollingInterval 1` "
            "(it initializes each round, then rewards)",
            "- Baseline: the fastest possible caller, a loop reading the chain every 0.1 s and sending "
            "reward() the moment the round is initialized (bench/bench_reward.py)",
            "",
            "Blocks from the round's NewRound event to the orchestrator's Reward event:",
            "",
            "| caller | median | p90 | per round |",
            "|---|---|---|---|",
            f"| lpnode | {statistics.median(lp):.1f} | {p90(lp):.1f} | {' '.join(map(str, lp))} |",
            f"| baseline | {statistics.median(base_v):.1f} | {p90(base_v):.1f} | {' '.join(map(str, base_v))} |",
            "",
            f"Target: median at most 2 blocks. The poll interval (`-blockPollingInterval`, go-livepeer's "
            "default 5 s) bounds it: on Arbitrum One the round's clock is L1 blocks, one per 12 s, so the "
            "default is well inside one block there.",
            "",
        ])
        benchdoc.write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
