"""`report.md`, the PNG plots and the summary printed at the end of `chatbot bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.bench.analysis import floor_at, stack_cpu_ms

PROCESS_ORDER = (
    "temporal",
    "worker",
    "gateway",
    "postgres",
    "redis",
    "fake-llm",
    "direct",
    "locust",
    "bench",
    "other",
)


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _verdict(target: dict[str, Any]) -> str:
    if target["met"] is None:
        return "not measured"
    return "met" if target["met"] else "**MISSED**"


def _target_value(target: dict[str, Any]) -> str:
    if target["value"] is None:
        return "-"
    if target["unit"] == "x":
        return f"{target['value']:.2f}x"
    return f"{target['value']:.0f} {target['unit']}"


def _target_limit(target: dict[str, Any]) -> str:
    limit = target["limit"]
    shown = f"{limit:g}x" if target["unit"] == "x" else f"{limit:g} {target['unit']}"
    return f"{target['comparison']} {shown}"


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | value | limit | result |", "|---|---|---|---|"]
    for t in targets:
        row = [t["description"], _target_value(t), _target_limit(t), _verdict(t)]
        lines.append(f"| {' | '.join(row)} |")
    return lines


def missed_lines(targets: list[dict[str, Any]]) -> list[str]:
    return [
        f"- MISSED: {t['description']}: {_target_value(t)}, the target is {_target_limit(t)}."
        for t in targets
        if t["met"] is False
    ]


def scenario_table(scenarios: dict[str, dict[str, Any]]) -> list[str]:
    head = (
        "| scenario | path | users | turns ok/sent | success | e2e p50 | p95 | p99 "
        "| TTFT p50 | overhead p50 | overhead p99 | turns/s |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in scenarios.values():
        e2e, over = s["e2e_ms"], s["overhead_ms"]
        row = [
            s["name"],
            s["target"],
            str(s["users"]),
            f"{s['ok']}/{s['sent']}",
            f"{100 * s['success_rate']:.1f} %",
            _num(e2e["p50"]),
            _num(e2e["p95"]),
            _num(e2e["p99"]),
            _num(s["ttft_ms"]["p50"]),
            _num(over["p50"]),
            _num(over["p99"]),
            _num(s["turns_per_s"]),
        ]
        lines.append(f"| {' | '.join(row)} |")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    meta, floor = results["meta"], results.get("floor")
    scenarios, targets = results["scenarios"], results["targets"]
    llm = meta["llm"]
    out = [
        f"# Benchmark {meta['started']}",
        "",
        f"{meta['machine']['cores']} cores, {meta['machine']['memory_gb']:.0f} GiB, "
        f"{meta['machine']['platform']}, Python {meta['machine']['python']}. "
        f"Temporal: {meta['temporal']}. Everything (load generator included) ran on this "
        "machine. Latencies in ms; CPU in % of one core.",
        f"Fake LLM: {llm['latency_ms']:g} ms to the first token, "
        f"{llm['tokens_per_second']:g} tokens/s, {llm['reply_tokens']} tokens a reply "
        f"({llm['own_ms']:.0f} ms of its own); `llm1s` scenarios wait "
        f"{meta['slow_llm_ms']:g} ms for the first token, `sustained` uses a zero-latency LLM.",
    ]
    tuned = ", ".join(f"`{k}={v}`" for k, v in meta.get("settings", {}).items()) or "defaults"
    out.append(f"Service: {meta.get('workers', 1)} worker process(es), settings {tuned}.")
    if meta["smoke"]:
        out += [
            "",
            "**Smoke run**: a few seconds per scenario, to prove the bench works; "
            "its figures are not a measurement.",
        ]
    other = meta.get("other_cpu_percent")
    if other is not None and other > 10:
        out += [
            "",
            f"**Noise**: processes outside the stack used {other:.0f} % of a core on "
            "average during the run; latencies and throughput are pessimistic by that much "
            "contention (CPU per turn much less so).",
        ]
    out += ["", "## Targets", "", *targets_table(targets), ""]
    missed = missed_lines(targets)
    out += missed or ["All measured targets are met."]
    out += context_lines(floor, scenarios, cores=meta["machine"]["cores"] or 1)
    if floor:
        update, new = floor["update_ms"], floor["new_workflow_ms"]
        out += [
            "",
            "## Raw floor (no-op update-with-start, same Temporal server)",
            "",
            "| measure | p50 | p95 | p99 |",
            "|---|---|---|---|",
            f"| existing workflow, one at a time (n={update['n']}) | {_num(update['p50'])} "
            f"| {_num(update['p95'])} | {_num(update['p99'])} |",
            f"| new workflow (n={new['n']}) | {_num(new['p50'])} | {_num(new['p95'])} "
            f"| {_num(new['p99'])} |",
            *(
                f"| update running one {what} activity (n={step['n']}) | {_num(step['p50'])} "
                f"| {_num(step['p95'])} | {_num(step['p99'])} |"
                for what, step in (
                    ("normal", floor.get("update_with_activity_ms")),
                    ("local", floor.get("update_with_local_activity_ms")),
                )
                if step
            ),
            "",
            "CPU per no-op update (ms): "
            + ", ".join(
                f"{proc} {_num(ms)}" for proc, ms in floor.get("cpu_ms_per_update", {}).items()
            )
            + " (the bench process is the floor's client and worker).",
            "",
            "| concurrency | updates/s | p50 | p99 |",
            "|---|---|---|---|",
            *(
                f"| {lv['concurrency']} | {lv['updates_per_s']:.1f} | {_num(lv['p50_ms'])} "
                f"| {_num(lv['p99_ms'])} |"
                for lv in floor["throughput"]
            ),
        ]
    out += ["", "## Service and direct path, per scenario", "", *scenario_table(scenarios)]
    out += [
        "",
        "Overhead = end-to-end minus the fake LLM's own time. "
        "First messages start their session's workflow; later ones reuse it.",
        "",
        "| scenario | e2e p50 first msg | e2e p50 later msgs | accepted p50 "
        "| detect_intent | first_token | generate_reply | persist_turn | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios.values():
        steps = s["steps_ms"]
        errors = "; ".join(f"{n} x {e}" for e, n in s["errors"].items()) or "-"
        if s.get("retried"):
            errors = f"{s['retried']} asked again after a 503; {errors}"
        row = [
            s["name"],
            _num(s["e2e_first_message_ms"]["p50"]),
            _num(s["e2e_later_messages_ms"]["p50"]),
            _num(s["accepted_ms"]["p50"]),
            *(_num(steps[k]["p50"]) for k in ("detect_intent", "first_token")),
            *(_num(steps[k]["p50"]) for k in ("generate_reply", "persist_turn")),
            errors.replace("|", "/"),
        ]
        out.append(f"| {' | '.join(row)} |")
    out += ["", "Step columns are the workflow's own timings (p50).", ""]
    out += tool_turn_lines(scenarios, results.get("tool_turns") or [])
    out += cache_lines(scenarios)
    out += timeline_lines(results.get("timelines") or [])
    out += cpu_per_turn_table(scenarios)
    out += ["", "## Integrity", ""]
    out += [
        "| scenario | sent | acknowledged | persisted | lost | duplicated |",
        "|---|---|---|---|---|---|",
    ]
    for name, i in results["integrity"].items():
        out.append(
            f"| {name} | {i['sent']} | {i['acknowledged']} | {i['persisted']} "
            f"| {i['lost']} | {i['duplicated']} |"
        )
    totals = results["integrity_total"]
    out += [
        f"| **total** | {totals['sent']} | {totals['acknowledged']} | {totals['persisted']} "
        f"| **{totals['lost']}** | **{totals['duplicated']}** |",
        "",
        "## CPU and peak memory per process",
        "",
        "CPU in % of one core (average over the window), memory as peak RSS (summed over a "
        "group's processes, so Postgres counts its shared buffers once per backend); `other` "
        "is everything else on the machine; CPU pressure is the share of the time some task "
        "waited for a CPU.",
        "",
    ]
    out += resources_table(results["resources"])
    out += [
        "",
        "## Plots",
        "",
        *(f"![{name}]({name})" for name in results.get("plots", [])),
        "",
    ]
    return "\n".join(out)


def timeline_lines(timelines: list[dict[str, Any]]) -> list[str]:
    """Where a turn's time goes, point by point (loadtest.bench.timeline)."""
    if not timelines:
        return []
    out = [
        "## Where a turn's time goes",
        "",
        "SSE turns on the default fake LLM, each placed on one clock from the client, the "
        "session's Temporal history and the turn's Redis stream; medians over the turns "
        "(each session's first turn, which starts its workflow, left out). `gap` is the "
        "median time from the point above.",
        "",
    ]
    for t in timelines:
        out += [
            f"{t['sessions']} session(s) at once, {t['turns']} turns:",
            "",
            "| point | ms since the client sent | gap |",
            "|---|---|---|",
            *(
                f"| {p['point']} | {_num(p['ms_since_send_p50'])} | {_num(p['gap_ms_p50'])} |"
                for p in t["points"]
            ),
            "",
        ]
    return out


def context_lines(
    floor: dict[str, Any] | None, scenarios: dict[str, dict[str, Any]], *, cores: int
) -> list[str]:
    """What bounds the targets on this machine, from this run's own figures: the floor
    under the same concurrency, and what a turn costs in CPU next to a no-op update."""
    if not floor:
        return []
    lines = ["", "Reading the targets (this run's figures):"]
    at20 = scenarios.get("high") or scenarios.get("concurrent")
    at20_floor = floor_at(floor, 20)
    if at20 and at20_floor and at20["overhead_ms"]["p50"] is not None:
        lines.append(
            f"- 20 no-op updates at once already take p50 {_num(at20_floor)} ms on this "
            f"server ({at20_floor / floor['update_ms']['p50']:.1f}x its one-at-a-time "
            f"p50); the service's overhead p50 at 20 sessions ({at20['name']}) is "
            f"{at20['overhead_ms']['p50'] / at20_floor:.1f}x that."
        )
    busiest = scenarios.get("sustained") or at20
    per_update = sum(floor.get("cpu_ms_per_update", {}).values())
    if busiest and per_update:
        per_turn = stack_cpu_ms(busiest) or 0.0
        ceiling = 1000 * cores / per_turn if per_turn else 0.0
        lines.append(
            f"- A turn costs {per_turn:.0f} ms of CPU across the stack ({busiest['name']}), "
            f"a no-op update {per_update:.1f} ms with its client: {cores} cores can carry at "
            f"most ~{ceiling:.0f} turns/s, {ceiling / floor['max_updates_per_s']:.2f}x the "
            "no-op update throughput, before the load generator takes its share."
        )
    return lines


def cache_lines(scenarios: dict[str, dict[str, Any]]) -> list[str]:
    """The response cache: what share of repeated questions it answered, and how much
    sooner its answers ended and began than the model's."""
    cached = [s for s in scenarios.values() if "cache" in s]
    if not cached:
        return []
    out = [
        "",
        "## Response cache",
        "",
        "Through a worker with `CACHE_MODE=exact` on a task queue of its own (the other "
        "scenarios' turns never touch the cache). A hit is a turn answered from Redis: no "
        "provider call, no tokens.",
        "",
        "| scenario | hit rate | hits / turns | e2e p50 hit | e2e p50 miss | saved p50 "
        "| first token p50 hit | first token p50 miss | completion tokens saved |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in cached:
        c = s["cache"]
        row = [
            s["name"],
            f"{c['hit_rate']:.0%}",
            f"{c['hits']} / {c['hits'] + c['misses']}",
            _num(c["e2e_hit_ms"]["p50"]),
            _num(c["e2e_miss_ms"]["p50"]),
            _num(c["e2e_saved_p50_ms"]),
            _num(c["ttft_hit_ms"]["p50"]),
            _num(c["ttft_miss_ms"]["p50"]),
            f"{c['completion_tokens_saved']:.0f}",
        ]
        out.append(f"| {' | '.join(row)} |")
    return [*out, ""]


def _ratio_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def tool_turn_lines(
    scenarios: dict[str, dict[str, Any]], ratios: list[dict[str, Any]]
) -> list[str]:
    """The tool-calling scenarios: their calls, latencies, ratios and each tool's time."""
    tools = [s for s in scenarios.values() if "tool_calls" in s]
    if not tools:
        return []
    llm = tools[0]["llm"]
    lines = [
        "## Tool-calling turns",
        "",
        "Through a second gateway with `TOOL_CALLING=on` on the same workers: the fake model "
        f"asks for {' and '.join(f'`{n}`' for n in llm.get('tool_calls', []))} in a turn's "
        "first round, the calls run in parallel as activities, and the round carrying their "
        f"results streams the reply. The fake's own time per turn is {llm['own_ms']:.0f} ms "
        f"(its first reply token at {llm.get('first_token_ms', 0):.0f} ms, the web search's "
        "model call included); overhead is end-to-end minus that.",
        "",
        "| scenario | turns ok/sent | calls per turn | turns not as expected | e2e p50 | p95 "
        "| p99 | TTFT p50 | p95 | p99 | overhead p50 | overhead p99 | turns/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in tools:
        calls, e2e, ttft, over = s["tool_calls"], s["e2e_ms"], s["ttft_ms"], s["overhead_ms"]
        per_turn = ", ".join(f"{n}: {k}" for n, k in calls["calls_per_turn"].items()) or "-"
        row = [
            s["name"],
            f"{s['ok']}/{s['sent']}",
            per_turn,
            str(calls["turns_not_as_expected"]),
            *(_num(e2e[q]) for q in ("p50", "p95", "p99")),
            *(_num(ttft[q]) for q in ("p50", "p95", "p99")),
            _num(over["p50"]),
            _num(over["p99"]),
            _num(s["turns_per_s"]),
        ]
        lines.append(f"| {' | '.join(row)} |")
    lines += [
        "",
        "Ratios as the targets put the chat path's, and against the chat scenario of the "
        "same shape (what the rounds and calls add):",
        "",
        "| scenario | overhead p50 / floor p50 | overhead p99 / floor p99 "
        "| (TTFT p50 - fake's own) / floor p50 | chat scenario | overhead p50 / chat's "
        "| overhead p99 / chat's | turns/s / chat's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in ratios:
        row = [
            r["name"],
            _ratio_cell(r["overhead_p50_vs_floor"]),
            _ratio_cell(r["overhead_p99_vs_floor"]),
            _ratio_cell(r["ttft_overhead_p50_vs_floor"]),
            r["counterpart"] or "not run",
            _ratio_cell(r["overhead_p50_vs_chat"]),
            _ratio_cell(r["overhead_p99_vs_chat"]),
            _ratio_cell(r["turns_per_s_vs_chat"]),
        ]
        lines.append(f"| {' | '.join(row)} |")
    lines += [
        "",
        "Each tool's activity as the workflow timed it (scheduled to result, ms):",
        "",
        "| scenario | tool | calls | ok | p50 | p95 | p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in tools:
        for name, t in s["tool_calls"]["by_tool"].items():
            ms = t["ms"]
            cells = [s["name"], name, str(t["calls"]), str(t["ok"])]
            cells += [_num(ms[q]) for q in ("p50", "p95", "p99")]
            lines.append(f"| {' | '.join(cells)} |")
    return [*lines, ""]


def cpu_per_turn_table(scenarios: dict[str, dict[str, Any]]) -> list[str]:
    """CPU milliseconds per completed turn, per process: what a turn costs, whatever else
    the machine is doing (latencies suffer from contention, CPU time much less)."""
    per_turn = {n: s.get("cpu_ms_per_turn") or {} for n, s in scenarios.items()}
    present = [p for p in PROCESS_ORDER if any(p in v for v in per_turn.values())]
    lines = [
        "CPU time per completed turn (ms), by process. Meaningful under load (high, sustained, "
        "scale); at low load, idle polling and locust's start-up dominate it.",
        "",
        "| scenario | " + " | ".join(present) + " |",
        "|---" * (len(present) + 1) + "|",
    ]
    for name, values in per_turn.items():
        lines.append(f"| {name} | " + " | ".join(_num(values.get(p)) for p in present) + " |")
    return lines


def resources_table(resources: dict[str, dict[str, Any]]) -> list[str]:
    present = [p for p in PROCESS_ORDER if any(p in r["processes"] for r in resources.values())]
    lines = [
        "| window | " + " | ".join(present) + " | CPU pressure |",
        "|---" * (len(present) + 2) + "|",
    ]
    for name, usage in resources.items():
        cells = []
        for proc in present:
            u = usage["processes"].get(proc)
            if u is None:
                cells.append("-")
            elif u.get("rss_peak_mb") is None:
                cells.append(f"{u['cpu_percent']:.0f} %")
            else:
                cells.append(f"{u['cpu_percent']:.0f} % / {u['rss_peak_mb']:.0f} MB")
        pressure = usage.get("cpu_pressure_percent")
        cells.append("-" if pressure is None else f"{pressure:.0f} %")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def console_summary(results: dict[str, Any], out_dir: Path) -> str:
    lines = [
        "",
        "Targets (ratios, so they hold on any machine):",
        *targets_table(results["targets"]),
    ]
    lines += missed_lines(results["targets"])
    lines += ["", *scenario_table(results["scenarios"])]
    for s in results["scenarios"].values():
        if "tool_calls" in s:
            calls = s["tool_calls"]
            made = calls["calls_per_turn"].items()
            per_turn = ", ".join(f"{k} turns made {n} calls" for n, k in made) or "no turns"
            lines.append(
                f"{s['name']}: {per_turn}; {calls['turns_not_as_expected']} did not make "
                f"exactly {calls['expected_per_turn']}, each ok."
            )
        if "cache" in s:
            c = s["cache"]
            lines.append(
                f"{s['name']}: response cache hit rate {c['hit_rate']:.0%} "
                f"({c['hits']} of {c['hits'] + c['misses']}); e2e p50 "
                f"{_num(c['e2e_hit_ms']['p50'])} ms from the cache against "
                f"{_num(c['e2e_miss_ms']['p50'])} ms from the model."
            )
    t = results["integrity_total"]
    lines += [
        "",
        f"Integrity: {t['sent']} sent, {t['persisted']} persisted, "
        f"{t['lost']} lost, {t['duplicated']} duplicated.",
        f"Results in {out_dir}/ (results.json, report.md, plots).",
    ]
    return "\n".join(lines) + "\n"


def write_plots(results: dict[str, Any], out_dir: Path) -> list[str]:
    """The PNGs, by file name. matplotlib is imported here only (the `load` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    scenarios = [s for s in results["scenarios"].values() if s["ok"]]
    floor = results.get("floor")

    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.27
    for i, q in enumerate(("p50", "p95", "p99")):
        xs = [n + (i - 1) * width for n in range(len(scenarios))]
        ax.bar(xs, [s["e2e_ms"][q] or 0 for s in scenarios], width, label=f"e2e {q}")
    ttft = [(n, s["ttft_ms"]["p50"]) for n, s in enumerate(scenarios) if s["ttft_ms"]["p50"]]
    if ttft:
        ax.scatter(*zip(*ttft, strict=True), marker="D", color="black", label="TTFT p50", zorder=3)
    ax.set_xticks(range(len(scenarios)), [s["name"] for s in scenarios], rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ms (log scale)")
    ax.set_title("End-to-end latency percentiles per scenario")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "latency_percentiles.png", dpi=110)
    plt.close(fig)
    written.append("latency_percentiles.png")

    fig, ax = plt.subplots(figsize=(9, 5.5))
    markers = {"service": "o", "direct": "s"}
    colours = plt.get_cmap("tab20")
    for i, s in enumerate(scenarios):
        marker = "^" if s["streaming"] else markers.get(s["target"], "o")
        ax.scatter(
            s["users"],
            s["turns_per_s"],
            s=45,
            marker=marker,
            color=colours(i % 20),
            label=s["name"],
        )
    if floor:
        levels = floor["throughput"]
        ax.plot(
            [lv["concurrency"] for lv in levels],
            [lv["updates_per_s"] for lv in levels],
            marker="o",
            linestyle="--",
            color="grey",
            label="raw floor: no-op updates/s",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent sessions (users), log scale")
    ax.set_ylabel("turns (updates) per second, log scale")
    ax.set_title("Throughput against concurrency (^ = SSE, square = direct path)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out_dir / "throughput_vs_concurrency.png", dpi=110)
    plt.close(fig)
    written.append("throughput_vs_concurrency.png")

    resources = results["resources"]
    if resources:
        names = list(resources)
        procs = [p for p in PROCESS_ORDER if any(p in r["processes"] for r in resources.values())]
        fig, ax = plt.subplots(figsize=(11, 5))
        bottom = [0.0] * len(names)
        for proc in procs:
            values = [
                resources[n]["processes"].get(proc, {}).get("cpu_percent", 0.0) for n in names
            ]
            ax.bar(names, values, bottom=bottom, label=proc)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        cores = next(iter(resources.values()))["cores"]
        ax.axhline(100 * cores, color="black", linestyle=":", label=f"{cores} cores")
        ax.set_ylabel("CPU, % of one core")
        ax.set_title("CPU per process, per scenario")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        fig.savefig(out_dir / "cpu_per_process.png", dpi=110)
        plt.close(fig)
        written.append("cpu_per_process.png")
    return written
