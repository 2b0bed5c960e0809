"""Mapping search (issue 19): a mapping as a plan of segments, priced by the closed form and the simulator,
and searched.

    plan      `Plan`: ordered segments (spatial or sequential, cores, carry), YAML/JSON, validated on a network
    cut       where a network can be cut, and each segment as a sub-network of its own
    segments  one segment's costs on one or many core budgets (closed form, vectorised; or the simulator)
    price     a plan's energy, latency, memory and feasibility: segments one after another, plus their handoffs
    search    `search`: exhaustive over a small space, an evolutionary search over a large one
    cli       `neurosim map`, and `neurosim run --plan`
"""

from .plan import Plan, Segment, load_plan
from .price import plan_report
from .search import search

__all__ = ["Plan", "Segment", "load_plan", "plan_report", "search"]
