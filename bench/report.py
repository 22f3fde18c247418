"""The benchmark's table (printed, and written as Markdown) and its plot (PNG)."""

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

NOT_MEASURED = "not measured"


@dataclass
class Row:
    measurement: str
    figure: str
    baseline: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    odoo: str = ""  # the Odoo series it ran on: "18", "19"

    def cells(self):
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        met = "" if self.met is None else ("yes" if self.met else "**no**")
        return [self.odoo, self.measurement, self.figure, self.baseline, ratio, self.goal, met]


HEADER = ["Odoo", "measurement", "figure", "baseline", "ratio", "goal", "met?"]


def markdown(rows, kept=""):
    """The table of ``rows``, after the rows of ``kept`` (an earlier table) that ran on another
    Odoo series: one table for every series, each row saying which it ran on."""
    series = {row.odoo for row in rows}
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += [line for line in _body(kept) if line.split("|")[1].strip() not in series]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _body(table):
    """The rows of a Markdown table written by ``markdown`` (those of an older one, without the
    Odoo column, ran on 18)."""
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]
    if table.startswith("| measurement"):
        return ["| 18 " + line for line in lines]
    return lines


def text(rows):
    table = [HEADER] + [row.cells() for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(HEADER))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in table
    )


def plot(path, cycle, idle_costs, match_costs, title):
    """``cycle``: {label: seconds}; ``idle_costs``: {series: {messages: ms}};
    ``match_costs``: {contacts: ms} or None."""
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.6))
    figure.suptitle(title)

    labels = list(cycle)
    bars = left.bar(labels, [cycle[label] for label in labels], color=["#b0b0b0", "#2b7bba"][: len(labels)])
    left.bar_label(bars, fmt="%.1f s")
    left.axhline(600, color="#c0392b", linestyle="--", linewidth=1, label="goal: within one 10-minute cycle")
    left.legend(loc="upper center", fontsize="small")
    left.set_ylim(0, max(600, *cycle.values()) * 1.25)
    left.set_ylabel("seconds")
    left.set_title("Idle cycle over every mailbox")

    for series, costs in idle_costs.items():
        sizes = sorted(costs)
        style = "--" if series.startswith("raw") else "-"
        middle.plot(sizes, [costs[size] for size in sizes], style, marker="o", label=series)
    middle.set_xscale("log")
    middle.set_ylim(bottom=0)
    middle.set_xlabel("messages in the mailbox")
    middle.set_ylabel("ms per idle mailbox")
    middle.set_title("Idle cost of one mailbox")
    middle.legend(fontsize="small")

    right.set_title("Contact match per batch of mail")
    if match_costs:
        counts = sorted(match_costs)
        right.plot(counts, [match_costs[count] for count in counts], marker="o")
        right.set_xscale("log")
        right.set_ylim(bottom=0)
        right.set_xlabel("contacts")
        right.set_ylabel("ms per batch")
    else:
        right.text(0.5, 0.5, NOT_MEASURED, ha="center", va="center", transform=right.transAxes)
        right.set_axis_off()

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
