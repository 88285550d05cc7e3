"""Match stage settings (conf/match.yaml): blocking, comparisons, training, thresholds, graph.

Every name in this file resolves through a registry or an allow-list and is checked here, before
Spark starts (STYLE.md 5, 6): blocking keys are parsed against the key-function registry and the
matchable columns of silver.records (never pasted into SQL), comparison functions and their
arguments against the comparison registry. Cross-field problems are collected and reported
together, each naming its path inside the ``match`` section, the value and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from jobs.common.config import Problem, Strict, check, duplicates, registry_problems, valid_attrs, valid_items
from jobs.common.schemas import (
    ID_COOKIE,
    ID_CUSTOMER_NUMBER,
    ID_DEVICE,
    ID_EMAIL,
    ID_LOYALTY_CARD,
    ID_PHONE,
)

if TYPE_CHECKING:
    from jobs.match.comparisons import ComparisonDef

# Columns of silver.records that blocking keys and comparisons may read.
MATCH_COLUMNS: tuple[str, ...] = (
    "title",
    "gender",
    "given_name",
    "initials",
    "name_particle",
    "family_name",
    "full_name",
    "given_name_match",
    "family_name_match",
    "full_name_match",
    "birth_date",
    "email",
    "phone",
    "street",
    "house_number",
    "house_number_suffix",
    "postcode",
    "city",
    "city_match",
    "country",
    "customer_number",
    "loyalty_card",
    "cookie_id",
    "device_id",
)

LinkType = Literal["dedupe", "link_only", "link_and_dedupe"]
IdType = Literal["email", "phone", "customer_number", "loyalty_card", "cookie_id", "device_id"]

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class BlockingRule(Strict):
    """Pairs of records whose key expressions are all equal (and not null or blank)."""

    name: str = Field(
        ..., pattern=NAME_PATTERN, description="rule name (lower case), named in reports and training.blocking_rules"
    )
    keys: list[str] = Field(..., min_length=1, description="column names or key functions, see blocking.py")

    @check
    def _parse_keys(self) -> Iterator[Problem]:
        from jobs.match.blocking import parse_key

        for i, key in valid_items(self.keys):
            try:
                parse_key(key)
            except ValueError as exc:
                yield Problem(f"keys[{i}]", key, _key_expectation(key, str(exc)))

    def base_columns(self) -> set[str]:
        """The silver.records columns the rule reads."""
        from jobs.match.blocking import parse_key

        return {parse_key(k).column for k in self.keys}


class ComparisonConfig(Strict):
    """One comparison: a registered function applied to one or more columns."""

    name: str = Field(
        ..., pattern=NAME_PATTERN, description="comparison name (lower case): its levels and weights are reported under it"
    )
    function: str = Field(
        ...,
        description="a registered comparison (registry COMPARISONS: jaro_winkler, levenshtein, exact, date, "
        "email, phone, postcode, address, name_swap)",
    )
    columns: list[str] = Field(
        ..., min_length=1, description="silver.records columns it compares (address and name_swap take several)"
    )
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the function (e.g. thresholds), checked against it when the config loads",
    )
    term_frequency_adjustments: bool = Field(
        False,
        description="agreement on a rare value weighs more than on a common one: the exact level's u becomes "
        "the value's frequency among the records",
    )
    tf_minimum_u_value: float = Field(
        1e-4, gt=0, lt=1, description="floor of the term frequency replacing u at the exact level"
    )

    @check
    def _known_columns(self) -> Iterator[Problem]:
        for i, c in valid_items(self.columns):
            if c not in MATCH_COLUMNS:
                yield Problem(f"columns[{i}]", c, f"a column of silver.records: {', '.join(MATCH_COLUMNS)}")

    @check
    def _function(self) -> Iterator[Problem]:
        from jobs.match.comparisons import COMPARISONS, build_comparison

        problems = registry_problems(
            COMPARISONS, self.function, self.arguments, skip=1, name_path="function", args_path="arguments"
        )
        if problems:
            yield from problems
            return
        if not all(c in MATCH_COLUMNS for c in self.columns):
            return  # reported by _known_columns; the function cannot be tried on them
        # The function checks its columns and arguments when it builds the comparison; built once
        # without term-frequency adjustments, so a failure can be put on the right key.
        try:
            build_comparison(self.model_copy(update={"term_frequency_adjustments": False}))
        except (ValueError, TypeError) as exc:
            yield Problem(
                "", None, f"columns and arguments that comparison {self.function!r} accepts ({exc})",
                given_text=f"function {self.function!r} on columns {list(self.columns)}",
            )
            return
        if self.term_frequency_adjustments:
            try:
                build_comparison(self)
            except (ValueError, TypeError) as exc:
                yield Problem("term_frequency_adjustments", True, f"false: {str(exc).split('; expected')[0]}")


def _key_expectation(key: str, message: str) -> str:
    """What a blocking key should be, from parse_key's message (which starts ``got 'key'; ``)."""
    rest = message.removeprefix(f"got {key!r}; ")
    return rest.removeprefix("expected ") if rest.startswith("expected ") else f"a valid blocking key ({rest})"


class TrainingConfig(Strict):
    """How the Fellegi-Sunter parameters are estimated (see model.py)."""

    u_sample_pairs: int = Field(
        2_000_000, ge=1_000, le=1_000_000_000, description="random record pairs for the u probabilities"
    )
    seed: int = Field(42, description="seed of the u sample (a hash of record key and seed)")
    max_iterations: int = Field(25, ge=1, le=1_000, description="most EM iterations per training session")
    tolerance: float = Field(1e-5, gt=0, lt=1, description="stop when no m or prior moves more than this")
    blocking_rules: list[str] = Field(
        default_factory=list,
        description="rules to train with (their candidate pairs); empty: all blocking rules",
    )
    sessions: Literal["per_rule", "pooled"] = Field(
        "per_rule",
        description=(
            "per_rule: one EM per training blocking rule, each estimating m only for the comparisons "
            "that do not read the rule's columns, then m averaged over the rules (as Splink does); "
            "pooled: one EM over all candidate pairs"
        ),
    )
    prior: Literal["em", "fixed"] = Field("em", description="estimate the match prior, or use prior_value")
    prior_value: float | None = Field(
        None, gt=0, lt=1, description="probability that two random records match (prior: fixed)"
    )
    m_floor: float = Field(1e-6, gt=0, lt=0.01, description="smallest m probability of a level")
    labels_path: str | None = Field(
        None, description="optional table of labelled pairs (record_key_l, record_key_r, is_match)"
    )
    labels_mode: Literal["seed", "fix"] = Field(
        "seed", description="labelled matches seed m before EM, or fix m (EM then re-estimates only the prior)"
    )

    @check
    def _prior_value(self) -> Iterator[Problem]:
        if self.prior == "fixed" and self.prior_value is None:
            yield Problem(
                "prior_value", None, "the probability that two random records match (prior is 'fixed')", "nothing"
            )
        if self.prior == "em" and self.prior_value is not None:
            yield Problem("prior_value", self.prior_value, "no prior_value: it is only used with prior: fixed")


class DeterministicConfig(Strict):
    """Identifier links: records that share an identifier value are the same person."""

    enabled: bool = Field(
        True, description="link records sharing an identifier value; false: probabilistic edges only"
    )
    id_types: list[IdType] = Field(
        default_factory=lambda: [ID_CUSTOMER_NUMBER, ID_LOYALTY_CARD, ID_EMAIL],
        description="phone is off by default: landlines are shared within households",
    )
    cookie_login: bool = Field(True, description="link a web cookie to the customer number it logged in with")
    max_records_per_value: int = Field(
        20, ge=2, description="a value shared by more records is generic (info@, 0000): reported, not used"
    )
    conflict_check: list[IdType] = Field(
        default_factory=lambda: [ID_EMAIL, ID_LOYALTY_CARD],
        description=(
            "types whose value links nothing when its records have more than one given-name initial "
            "or birth date (a family e-mail, a shared card; the probabilistic model weighs those "
            "pairs); a customer number is an account and links despite a typo in a birth date"
        ),
    )
    max_customers_per_cookie: int = Field(
        1, ge=1, description="a cookie that logged in as more customers is a shared device: not used"
    )

    @check
    def _id_types_once(self) -> Iterator[Problem]:
        for i, id_type, first in duplicates(valid_items(self.id_types)):
            yield Problem(
                f"id_types[{i}]", id_type, f"each identifier type at most once; {id_type!r} is already id_types[{first}]"
            )


class ClusteringConfig(Strict):
    """Connected components of the accepted edges (connected_components.py)."""

    engine: Literal["auto", "scipy", "star", "graphframes"] = Field(
        "auto",
        description="auto: scipy on the driver up to driver_edge_limit edges, else star (large-star/small-star "
        "on DataFrames); graphframes: GraphFrames' connectedComponents (its jar on the classpath; not over Spark Connect)",
    )
    driver_edge_limit: int = Field(
        5_000_000,
        ge=0,
        description="engine auto: graphs with at most this many edges are solved on the driver with scipy "
        "(two integer columns collected), larger ones with large-star/small-star",
    )
    checkpoint_every: int = Field(
        2,
        ge=1,
        le=100,
        description=(
            "rounds of large-star/small-star between checkpoints (each also sets finished components "
            "aside). 2, not 1: a round reads its input once, so the rounds between two checkpoints are "
            "each computed once, while a checkpoint costs a materialisation and the finished-star check "
            "(two shuffles). Measured with bench/cc_bench.py --checkpoint-every on local[2]: 200,000 "
            "nodes with 150,000 random edges 11.9 s at 2, 19.1 s at 1, 13.1 s at 3; 2,000 chains of 50 "
            "nodes 9.1 s at 2, 11.1 s at 1, 8.5 s at 3. Also GraphFrames' checkpoint interval"
        ),
    )
    checkpoint: Literal["local", "reliable"] = Field(
        "local",
        description="local: checkpoints on the executors' disks (no checkpoint dir needed); reliable: in the "
        "session's checkpoint dir (<lake.root>/_checkpoints when the session had none)",
    )
    max_iterations: int = Field(
        200, ge=1, le=10_000, description="most large-star/small-star rounds; a graph not converged by then fails the run"
    )


class GuardConfig(Strict):
    """Over-merge guard (guard.py): split clusters that are too large or hang on a weak bridge."""

    enabled: bool = Field(True, description="check clusters for over-merging; false: clusters as the graph connects them")
    max_cluster_size: int = Field(
        50,
        ge=2,
        description="a cluster with more records is re-clustered with its strong edges only (identifier links, "
        "probabilities at or above strict_threshold_probability)",
    )
    strict_threshold_probability: float = Field(
        0.999,
        gt=0,
        lt=1,
        description="probabilistic edges at or above it are strong: kept by the size split, never cut as a "
        "weak bridge (at least threshold_probability)",
    )
    bridge_detection: bool = Field(
        True,
        description="cut a weak edge that is the only link between two parts of a cluster, each of at least "
        "bridge_min_side records",
    )
    bridge_min_side: int = Field(
        2, ge=1, description="a weak bridge counts when both sides keep at least this many records"
    )
    max_inspected_edges: int = Field(2_000_000, ge=1, description="edges of suspicious clusters taken to the driver")


class ModelRefConfig(Strict):
    """Registered model the match job scores with: a version, an alias, or (neither) the latest."""

    name: str = Field(
        "cdp-match",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="MLflow registered model that training adds versions to and the match job scores with",
    )
    version: int | None = Field(None, ge=1, description="score with this model version; null: see alias")
    alias: str | None = Field(
        None,
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
        description="score with the version this MLflow alias points to (e.g. champion); with neither version "
        "nor alias: the latest version",
    )

    @check
    def _version_or_alias(self) -> Iterator[Problem]:
        if self.version is not None and self.alias is not None:
            yield Problem(
                "", None, "a version or an alias, not both",
                given_text=f"version {self.version} and alias {self.alias!r}",
            )


def _default_rules() -> list[BlockingRule]:
    return [
        BlockingRule(name="family_given", keys=["family_name_match", "given_name_match"]),
        BlockingRule(name="birth_family3", keys=["birth_date", "substr(family_name_match,1,3)"]),
        BlockingRule(name="birth_given", keys=["birth_date", "given_name_match"]),
        BlockingRule(name="email", keys=["email"]),
        BlockingRule(name="phone", keys=["phone_last9"]),
        BlockingRule(name="postcode_house", keys=["postcode", "house_number"]),
        BlockingRule(name="soundex_postcode", keys=["soundex(family_name_match)", "postcode_digits"]),
    ]


def _default_comparisons() -> list[ComparisonConfig]:
    return [
        ComparisonConfig(
            name="given_name", function="jaro_winkler", columns=["given_name_match"], term_frequency_adjustments=True
        ),
        ComparisonConfig(
            name="family_name", function="jaro_winkler", columns=["family_name_match"], term_frequency_adjustments=True
        ),
        ComparisonConfig(name="name_swap", function="name_swap", columns=["given_name_match", "family_name_match"]),
        ComparisonConfig(name="birth_date", function="date", columns=["birth_date"]),
        ComparisonConfig(name="email", function="email", columns=["email"]),
        ComparisonConfig(name="phone", function="phone", columns=["phone"]),
        # One comparison for the address: postcode, house number, street and city are one fact
        # (jobs/match/comparisons.py address_levels); its same-town level is adjusted by the
        # city's frequency.
        ComparisonConfig(
            name="address",
            function="address",
            columns=["postcode", "house_number", "street", "city_match"],
            term_frequency_adjustments=True,
        ),
    ]


class MatchConfig(Strict):
    """The match section: how candidate pairs are found, compared, scored and clustered."""

    link_type: LinkType = Field(
        "dedupe",
        description=(
            "which record pairs blocking may make from the one table of all sources' records "
            "(silver.records), and so which pairs the u sample and the prior count. dedupe: every "
            "pair, within a source and across sources (the CDP default). link_only: pairs of records "
            "of different sources only; two records of one source are never compared (each source is "
            "taken to hold a person once), though they can still share a cluster through a record of "
            "another source or a shared identifier (identifier links ignore link_type). "
            "link_and_dedupe: Splink's name for pairs within and across its inputs; with every "
            "source in one table that is every pair, so it is the same as dedupe in every step"
        ),
    )
    blocking_rules: list[BlockingRule] = Field(
        default_factory=_default_rules,
        min_length=1,
        description="candidate pairs: records agreeing on every key of at least one rule are compared",
    )
    max_block_size: int = Field(2_000, ge=2, description="larger blocks are skipped and reported")
    comparisons: list[ComparisonConfig] = Field(
        default_factory=_default_comparisons,
        min_length=1,
        description="how a pair is compared: one comparison per fact, each giving a level whose m and u weigh the pair",
    )
    term_frequency_resolution: float = Field(
        0.25,
        ge=0,
        le=2,
        description=(
            "term frequencies use record counts rounded to this step in log2 space (bits; 0: exact "
            "counts). A new batch then changes the weight of a common value only when its count "
            "crosses a step, so few stored pairs change score in an incremental run (which weighs its "
            "stored pairs again from their levels); a weight moves by at most half a step. Fixed in "
            "the model at training"
        ),
    )
    training: TrainingConfig = Field(
        default_factory=TrainingConfig, description="how `cdp match train` estimates the model (EM)"
    )
    threshold_probability: float = Field(0.9, gt=0, lt=1, description="pairs at or above it become edges")
    deterministic: DeterministicConfig = Field(
        default_factory=DeterministicConfig, description="identifier links, added to the probabilistic edges"
    )
    clustering: ClusteringConfig = Field(
        default_factory=ClusteringConfig, description="connected components of the edges (the clusters)"
    )
    guard: GuardConfig = Field(default_factory=GuardConfig, description="the over-merge guard, after clustering")
    model: ModelRefConfig = Field(default_factory=ModelRefConfig, description="the registered model the job scores with")

    @check
    def _unique_rule_names(self) -> Iterator[Problem]:
        for i, name, first in duplicates(valid_attrs(self.blocking_rules, "name")):
            yield Problem(
                f"blocking_rules[{i}].name", name, f"a unique name; {name!r} is already blocking_rules[{first}].name"
            )

    @check
    def _unique_comparison_names(self) -> Iterator[Problem]:
        for i, name, first in duplicates(valid_attrs(self.comparisons, "name")):
            yield Problem(
                f"comparisons[{i}].name", name, f"a unique name; {name!r} is already comparisons[{first}].name"
            )

    @check
    def _training_rules_exist(self) -> Iterator[Problem]:
        # A rule whose name did not validate cannot be referred to either, so valid names suffice.
        rule_names = list(dict.fromkeys(name for _, name in valid_attrs(self.blocking_rules, "name")))
        for i, name in valid_items(self.training.blocking_rules):
            if name not in rule_names:
                yield Problem(
                    f"training.blocking_rules[{i}]", name, f"one of the blocking rules: {', '.join(rule_names)}"
                )

    @check
    def _strict_threshold(self) -> Iterator[Problem]:
        if self.guard.strict_threshold_probability < self.threshold_probability:
            yield Problem(
                "guard.strict_threshold_probability",
                self.guard.strict_threshold_probability,
                f"at least threshold_probability ({self.threshold_probability})",
            )

    @check
    def _estimable_comparisons(self) -> Iterator[Problem]:
        """EM cannot estimate m for a comparison every training rule blocks on (it always agrees)."""
        training = list(self.training.blocking_rules)
        if not training:
            return
        rules: dict[str, BlockingRule] = {}
        for i, name in valid_attrs(self.blocking_rules, "name"):
            rules.setdefault(name, self.blocking_rules[i])  # the first of a repeated name, like rule()
        if any(name not in rules for name in training):
            return  # reported by _training_rules_exist
        try:
            blocked = [rules[name].base_columns() for name in dict.fromkeys(training)]
        except ValueError:
            return  # a key that does not parse: reported by the rule's own check
        for i, columns in valid_attrs(self.comparisons, "columns"):
            if all(set(columns) & cols for cols in blocked):
                yield Problem(
                    f"comparisons[{i}].columns",
                    columns,
                    "columns that not every training rule blocks on (training.blocking_rules: "
                    f"{', '.join(training)}); otherwise their m probabilities cannot be estimated",
                )

    def comparison_defs(self) -> list["ComparisonDef"]:
        """The configured comparisons, resolved through the registry."""
        from jobs.match.comparisons import build_comparison

        return [build_comparison(c) for c in self.comparisons]

    def rule(self, name: str) -> BlockingRule:
        for r in self.blocking_rules:
            if r.name == name:
                return r
        raise KeyError(f"unknown blocking rule {name!r}; configured: {', '.join(r.name for r in self.blocking_rules)}")

    def semantic_problems(self, root: Any) -> list[tuple[str, Any, str]]:
        """Checks against other sections (none yet: the match section is self-contained)."""
        return []
