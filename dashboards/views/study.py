"""Study: the Pareto front, all trials, the optimisation history and knob importance.

Drawn in under two seconds at 10,000 trials: the study's data is read once per version
(``common``), the trials table a page at a time with its filters applied in the database,
and the costly sections (parallel coordinates and slices, history, importance, comparison)
only when the user opens them: Streamlit runs every tab's and expander's code, so those
sections sit behind toggles instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from common import (
    AXIS_TITLES,
    MAX_SAMPLED,
    PAGE_ROWS,
    TRIAL_PAGE,
    axis_title,
    compare_figure,
    describe,
    filter_points,
    front_plot,
    guarded,
    history_figure,
    history_view,
    importance_view,
    is_baseline_config,
    knob_choices,
    load_study,
    mlflow_link,
    optuna_storage,
    parallel_figure,
    refresh_button,
    sample_points,
    save_note,
    selected_study,
    serving_figure,
    serving_view,
    slice_figure,
    study_names,
    study_notes,
    study_version,
    summary_at,
    trial_runs,
    trials_count,
    trials_page,
    url,
)
from front_chart import (
    MAX_PLAIN,
    PICK,
    PICK_FRONT,
    FrontChart,
    clicked_trial,
    front_chart,
    study_chart,
)
from infertune.tuning import queries
from infertune.tuning.queries import MIN_IMPORTANCE_TRIALS

#: Session key of the last point clicked on the front (so a rerun does not open it again).
_CLICKED = "infertune_front_clicked"
#: Session key of the front chart's switch that draws every trial, not a sample.
_DRAW_ALL = "front-draw-all"
#: Session keys of the trials table's page and of the filters it was paged under.
_PAGE = "trials-page"
_PAGED_UNDER = "infertune_trials_paged_under"
#: Knobs the trials table filters by in the database (the others filter the plots only).
_TABLE_KNOBS = ("runtime", "precision")


@dataclass(frozen=True)
class _Filters:
    """What the filter widgets chose.

    Attributes:
        front_only: Only trials on the shown front.
        states: The chosen states, or ``None`` for all of them.
        knobs: Each knob narrowed to some of its values (a knob left whole is absent).
    """

    front_only: bool = False
    states: tuple[str, ...] | None = None
    knobs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def table_query(self) -> dict[str, Any]:
        """The filters as :func:`queries.trials_table` takes them."""
        query: dict[str, Any] = {}
        if self.states is not None:
            query["states"] = self.states
        if self.front_only:
            query["front_only"] = True
        query.update({k: v for k, v in self.knobs.items() if k in _TABLE_KNOBS})
        return query

    def empty(self) -> bool:
        """Whether a filter was emptied (nothing can match)."""
        return self.states == () or any(not v for v in self.knobs.values())


def study_page() -> None:
    """The front, the trials, the history and the importance of one study."""
    st.title("Study")
    refresh_button()
    name = selected_study()
    if name is None:
        return
    storage = url()
    version = study_version(storage, name)
    summary = summary_at(storage, name, version)
    plot = front_plot(storage, name, version)
    runs = trial_runs(storage, name, version)
    notes = study_notes(storage, name)
    cols = st.columns(4)
    cols[0].metric("complete trials", summary["trials"]["COMPLETE"])
    cols[1].metric(
        "pruned / failed", f"{summary['trials']['PRUNED']} / {summary['trials']['FAIL']}"
    )
    cols[2].metric("on the front", summary["front_size"])
    best = summary["best_speedup_p95"]
    cols[3].metric("best speed-up (p95)", f"{best:.2f}x" if best else "—")
    st.caption(
        f"Model {summary['model']} · hardware {summary['hardware_id']} · "
        + ("front verified" if plot["verified"] else "front not verified (`infertune verify`)")
        + (" · trials still running" if summary["trials"].get("RUNNING") else "")
    )
    _study_note(name, notes["study"])

    filters = _filters(summary, plot, knob_choices(storage, name, version))
    shown = _shown(plot, filters)
    st.subheader("Pareto front")
    if plot["y"] is None or not plot["points"]:
        st.info("No completed trials to plot yet.")
    else:
        _front(name, version, plot, shown, runs)

    serving = serving_view(storage, name, version)
    if serving and serving["curves"]:
        st.subheader("Under load: rate vs p99")
        st.plotly_chart(serving_figure(serving), key="serving")
        st.caption(
            "Each front point's search for the highest Poisson arrival rate whose p99 meets "
            "the objective (x: a run that could not keep up with the rate, or too few "
            "queries)."
        )

    st.subheader("All trials")
    _trials_table(name, version, summary, filters, runs, notes["trials"])

    # The sections below read or compute more than the rest of the page together at
    # thousands of trials: each is drawn only while its toggle is on, and each is a fragment,
    # so switching it reruns that section alone, not the whole page.
    st.subheader("Knobs against objectives")
    _knobs_section(plot, shown)
    st.subheader("Optimisation history")
    _history_section(storage, name, version)
    st.subheader("Knob importance")
    _importance_section(storage, name, version)
    st.subheader("Compare studies")
    _compare_section(name, plot)


@st.fragment
def _knobs_section(plot: dict[str, Any], shown: list[dict[str, Any]]) -> None:
    if len(shown) <= 1:
        st.caption("Needs at least two completed trials (among those the filters keep).")
    elif st.toggle("Show parallel coordinates and slices", key="show-knobs"):
        _knob_plots(plot, shown)


@st.fragment
def _history_section(storage: str, name: str, version: str) -> None:
    if st.toggle("Show the history", key="show-history"):
        hist = history_view(storage, name, version)
        for figure_name, series in hist["series"].items():
            if series["trial"]:
                chart = history_figure(series, figure_name, hist["objectives"][figure_name])
                st.plotly_chart(chart, key=f"history-{figure_name}")


@st.fragment
def _importance_section(storage: str, name: str, version: str) -> None:
    if st.toggle(
        "Show the knob importance",
        key="show-importance",
        help="fANOVA over the completed trials: computed once per number of completed trials.",
    ):
        _importance(importance_view(storage, name, version))


@st.fragment
def _compare_section(name: str, plot: dict[str, Any]) -> None:
    if st.toggle("Compare with other studies", key="show-compare"):
        _compare(name, plot)


def _study_note(name: str, note: dict[str, Any] | None) -> None:
    if note:
        st.info(f"**Note** ({note['by']}, {note['at']}): {note['text']}")
    with st.expander("Edit the study's note" if note else "Add a note to this study"):
        text = st.text_area("Study note", value=(note or {}).get("text", ""), key="study-note")
        if st.button("Save note", key="save-study-note"):
            save_note(name, text)
            st.rerun()


def _filters(
    summary: dict[str, Any], plot: dict[str, Any], choices: dict[str, list[str]]
) -> _Filters:
    """The filter widgets: trial states, the front only, each varied knob's values.

    States come from the study's counts and runtimes and precisions from the database
    (every trial's, running and failed ones too); the other knobs' values from the
    completed trials.
    """
    all_states = [state for state, count in summary["trials"].items() if count]
    values = dict(plot["knob_values"])
    for knob in _TABLE_KNOBS:
        if len(choices.get(knob) or []) > 1:
            values[knob] = list(choices[knob])
    varied = sorted(values)
    with st.expander("Filter trials"):
        front_only = st.checkbox("Front only", key="filter-front")
        states = st.multiselect("State", all_states, default=all_states, key="filter-state")
        chosen = {}
        for column, knob in zip(st.columns(max(1, len(varied))), varied, strict=False):
            chosen[knob] = column.multiselect(
                knob, values[knob], default=values[knob], key=f"f-{knob}"
            )
        narrowed = {k: tuple(v) for k, v in chosen.items() if set(v) != set(values[k])}
        if any(k not in _TABLE_KNOBS for k in narrowed):
            st.caption(
                "The trials table filters by state, front, runtime and precision; "
                "the other knobs filter the plots."
            )
    return _Filters(
        front_only=front_only,
        states=None if set(states) == set(all_states) else tuple(states),
        knobs=narrowed,
    )


def _shown(plot: dict[str, Any], filters: _Filters) -> list[dict[str, Any]]:
    """The completed trials the knob and front filters keep (the state filter is the table's)."""
    points: list[dict[str, Any]] = plot["points"]
    if not filters.knobs and not filters.front_only:
        return points
    return filter_points(points, {k: list(v) for k, v in filters.knobs.items()},
                         filters.front_only)  # fmt: skip


def _front(
    name: str,
    version: str,
    plot: dict[str, Any],
    shown: list[dict[str, Any]],
    runs: dict[str, Any],
) -> None:
    colour_by = st.radio("Colour by", ["precision", "runtime"], horizontal=True)

    every = bool(st.session_state.get(_DRAW_ALL))
    limit = None if every else MAX_PLAIN

    def chart(y_key: str | None = None) -> FrontChart:
        if shown is plot["points"]:  # not filtered: built once per version
            return study_chart(url(), name, version, colour_by, y_key, limit)
        return front_chart({**plot, "points": shown}, colour_by, y_key, limit)

    drawn = chart()
    event = st.vega_lite_chart(
        drawn.table,
        drawn.spec,
        key="front",
        on_select="rerun",
        selection_mode=[PICK, PICK_FRONT],
        width="stretch",
    )
    if every or len(drawn.table) < drawn.plain:
        st.toggle(
            f"Draw all {drawn.plain:,} trials off the front",
            key=_DRAW_ALL,
            help=f"Off: every front and verified point, and a fixed sample of {MAX_PLAIN:,} "
            "of the other trials (the same density, drawn in a fraction of the time).",
        )
    if len(drawn.table) < drawn.plain:
        st.caption(
            f"Drawn: the front and a fixed sample of {len(drawn.table):,} of the "
            f"{drawn.plain:,} other trials."
        )
    st.caption("Click a point to open its trial.")
    _open_clicked(name, event)
    if len(shown) < len(plot["points"]):
        st.caption(f"Showing {len(shown)} of {len(plot['points'])} completed trials (filtered).")
    if any(is_baseline_config(p["config"]) for p in plot["points"]):
        st.caption("The ringed trial ran the baseline's settings (tf, fp32, defaults).")
    check = plot["verification"]
    if check:
        st.caption(
            f"Bars: {check['method']}. Dotted lines join ties: points no objective tells "
            "apart beyond the intervals. A point is dropped only when another is surely "
            "better somewhere and surely worse nowhere."
        )
        if check["warning"]:
            st.warning(check["warning"])
    else:
        st.caption(
            "Single measurements from the search: no intervals; differences under ~5% "
            "may be noise. `infertune verify` re-times the front and shows its intervals."
        )
    if plot["z"]:
        st.caption(f"Third objective: {axis_title(plot['z'])}")
        third = chart(plot["z"])
        st.vega_lite_chart(third.table, third.spec, key="front-z", width="stretch")
    front_points = sorted(
        (p for p in plot["points"] if p["on_front"]),
        key=lambda p: p["figures"].get(plot["x"]) or 0,
    )
    rows = [
        {
            "trial": p["number"],
            "configuration": describe(p["config"]),
            plot["x"]: p["figures"].get(plot["x"]),
            f"{plot['x']} interval": _interval(p["error"].get(plot["x"])),
            plot["y"]: p["figures"].get(plot["y"]),
            "speed-up (p95)": p["speedup_p95"],
            "verified": p["kept"],
            "tied with": ", ".join(f"#{n}" for n in p["ties_with"]),
            "MLflow run": _run(runs, p["number"]),
        }
        for p in front_points
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config=_number_columns(rows) | {
            "speed-up (p95)": st.column_config.NumberColumn(format="%.2fx"),
            "MLflow run": _run_column(runs),
        },
    )  # fmt: skip
    exported = [
        {k: p[k] for k in ("number", "config", "figures", "speedup_p95", "kept", "ties_with")}
        | {"interval": p["error"], "mlflow_run_id": runs["runs"].get(p["number"])}
        for p in front_points
    ]
    table = pd.DataFrame(rows)
    _downloads(
        "front",
        name,
        table.to_csv(index=False),
        json.dumps(exported, indent=2, default=str),
    )
    for p in front_points:
        st.page_link(
            TRIAL_PAGE,
            label=f"Trial {p['number']}: {describe(p['config'])}",
            query_params={"study": name, "trial": str(p["number"])},
        )


def _open_clicked(name: str, event: Any) -> None:
    """Open the trial of a clicked point (once per click)."""
    number = clicked_trial(event)
    if number is None:
        st.session_state.pop(_CLICKED, None)
        return
    clicked = (name, number)
    if st.session_state.get(_CLICKED) == clicked:
        return
    st.session_state[_CLICKED] = clicked
    st.switch_page(TRIAL_PAGE, query_params={"study": name, "trial": str(number)})


def _trials_table(
    name: str,
    version: str,
    summary: dict[str, Any],
    filters: _Filters,
    runs: dict[str, Any],
    notes: dict[int, Any],
) -> None:
    """The trials, a page at a time, filtered and paged in the database."""
    storage = url()
    total = sum(summary["trials"].values())
    query = filters.table_query()
    if filters.empty():
        count = 0
    elif query:
        count = trials_count(storage, name, version, tuple(sorted(query.items())))
    else:
        count = total
    pages = max(1, math.ceil(count / PAGE_ROWS))
    # A new filter starts at page 1; a page beyond the last (fewer trials) goes to the last.
    paged_under = repr(sorted(query.items()))
    if st.session_state.get(_PAGED_UNDER) != paged_under:
        st.session_state[_PAGED_UNDER] = paged_under
        st.session_state[_PAGE] = 1
    elif int(st.session_state.get(_PAGE) or 1) > pages:
        st.session_state[_PAGE] = pages
    left, right = st.columns([3, 1])
    newest_first = left.toggle("Newest first", key="trials-newest")
    page = min(pages, int(right.number_input("Page", min_value=1, step=1, key=_PAGE)))
    ordered = tuple(sorted({**query, "newest_first": newest_first}.items()))
    found = [] if count == 0 else trials_page(storage, name, version, ordered, page)
    rows = [_with_links(t, runs, notes) for t in found]
    if not rows:
        st.caption("No trial matches the filters." if total else "No trials yet.")
    else:
        first = (page - 1) * PAGE_ROWS + 1
        st.caption(
            f"Trials {first}-{first + len(rows) - 1} of {count}"
            + (f" matching the filters ({total} in all)" if count < total else "")
            + f" · page {page} of {pages}"
        )
    table = _table(rows)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config=_number_columns(rows) | {"MLflow run": _run_column(runs)},
    )
    # The whole filtered list is read only when a download is clicked.
    study_storage = optuna_storage(storage)

    def every_row() -> list[dict[str, Any]]:
        study = queries.load(name, study_storage)
        listed = [] if filters.empty() else queries.trials_table(study, **query)
        return [_with_links(t, runs, notes) for t in listed]

    _downloads(
        "trials",
        name,
        lambda: _table(every_row()).to_csv(index=False),
        lambda: json.dumps(every_row(), indent=2, default=str),
        help=f"All {count} trials the filters keep, read when you click.",
    )


def _with_links(row: dict[str, Any], runs: dict[str, Any], notes: dict[int, Any]) -> dict[str, Any]:
    """A trials-table row with its MLflow run and its note."""
    return row | {
        "MLflow run": _run(runs, row["trial"]),
        "note": (notes.get(row["trial"]) or {}).get("text", ""),
    }


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    if "threads" in table:
        table["threads"] = table["threads"].map(lambda t: "default" if pd.isna(t) else str(int(t)))
    return table


def _run(runs: dict[str, Any], number: int) -> str | None:
    """A trial's MLflow run: a link to the MLflow UI where there is one, else its id."""
    run_id: str | None = runs["runs"].get(number)
    return mlflow_link(runs["experiment_id"], run_id) or run_id


def _number_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Floats to 4 significant digits (the data keeps every digit; exports too)."""
    floats = {k for r in rows for k, v in r.items() if isinstance(v, float)}
    return {k: st.column_config.NumberColumn(format="%.4g") for k in floats}


def _run_column(runs: dict[str, Any]) -> Any:
    # Links exist for every run or for none (an MLflow server or not): ask about one.
    one = next((r for r in runs["runs"].values() if r), None)
    if mlflow_link(runs["experiment_id"], one):
        return st.column_config.LinkColumn("MLflow run", display_text="open in MLflow")
    return st.column_config.TextColumn(
        "MLflow run", help="Browse it with `mlflow ui` on the tracking store."
    )


def _downloads(
    what: str,
    name: str,
    csv: str | Callable[[], str],
    records: str | Callable[[], str],
    help: str | None = None,
) -> None:
    """CSV and JSON download buttons (a callable makes its file only when clicked)."""
    left, right = st.columns(2)
    left.download_button(
        f"Download the {what} (CSV)",
        csv,
        file_name=f"{name}-{what}.csv",
        mime="text/csv",
        key=f"csv-{what}",
        help=help,
        on_click="ignore",
    )
    right.download_button(
        f"Download the {what} (JSON)",
        records,
        file_name=f"{name}-{what}.json",
        mime="application/json",
        key=f"json-{what}",
        help=help,
        on_click="ignore",
    )


def _knob_plots(plot: dict[str, Any], shown: list[dict[str, Any]]) -> None:
    """Parallel coordinates and slice plots of the shown trials (a sample beyond a limit)."""
    drawn = sample_points(shown)
    if len(drawn) < len(shown):
        st.caption(
            f"A fixed sample of {len(drawn)} of the {len(shown)} trials shown (the front "
            f"always in): beyond {MAX_SAMPLED} lines these plots stop being readable."
        )
    st.caption("Parallel coordinates: one line per trial (drag along an axis to filter).")
    st.plotly_chart(parallel_figure(plot, drawn), key="parallel")
    key = st.selectbox(
        "Slice plots of",
        list(plot["objectives"]),
        format_func=lambda k: AXIS_TITLES.get(k, k),
    )
    st.plotly_chart(slice_figure(drawn, key), key="slices")


def _importance(scores: dict[str, dict[str, Any]]) -> None:
    for figure_name, entry in scores.items():
        title = AXIS_TITLES.get(figure_name, figure_name)
        if not entry["scores"]:
            st.caption(f"{title}: too few trials to tell ({entry['trials']} complete).")
            continue
        if not entry["reliable"]:
            st.warning(
                f"{title}: only {entry['trials']} complete trials; with fewer than "
                f"{MIN_IMPORTANCE_TRIALS} the split below is unreliable: read it as a hint."
            )
        ranked = sorted(entry["scores"].items(), key=lambda kv: kv[1])
        chart = go.Figure(
            go.Bar(
                x=[v for _, v in ranked],
                y=[k for k, _ in ranked],
                orientation="h",
                texttemplate="%{x:.0%}",
                hovertemplate="%{y}: %{x:.1%}<extra></extra>",
            )
        )
        chart.update_layout(
            height=60 + 30 * len(ranked),
            title={"text": title, "font": {"size": 14}},
            xaxis={"tickformat": ".0%", "range": [0, 1], "title": "share of the variance"},
            margin={"l": 10, "r": 10, "t": 30, "b": 10},
        )
        st.plotly_chart(chart, key=f"importance-{figure_name}")
    st.caption(
        "fANOVA on the knobs' values (a knob a trial did not set counts at its default); "
        "latency, size and memory on a log scale, so a factor counts as a factor."
    )


def _compare(name: str, plot: dict[str, Any]) -> None:
    storage = url()
    others = [n for n in study_names(storage) if n != name]
    if not others:
        st.caption("No other study to compare with.")
        return
    related = queries.related_studies(load_study(storage, name), optuna_storage(storage))
    picked = st.multiselect(
        "Compare with",
        others,
        default=[n for n in related if n in others],
        help="Defaults to the study's re-tunes (and the study it re-tunes).",
    )
    if not picked or plot["y"] is None:
        return
    plots = {name: plot} | {n: front_plot(storage, n, study_version(storage, n)) for n in picked}
    alike = {n: p for n, p in plots.items() if p["x"] == plot["x"] and p["y"] == plot["y"]}
    if len(alike) < len(plots):
        skipped = ", ".join(n for n in plots if n not in alike)
        st.caption(f"Left out (other objectives): {skipped}.")
    st.plotly_chart(compare_figure(alike, plot["x"], plot["y"]), key="compare")


def _interval(span: list[float] | None) -> str:
    """``[0.231, 0.240]``; empty where verification measured none."""
    return f"[{span[0]:.4g}, {span[1]:.4g}]" if span else ""


guarded(study_page)()
