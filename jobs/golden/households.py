"""Households and other relationships of persons (GOLDEN_HOUSEHOLDS).

A household is the persons living at one address: the same normalised postcode (upper case,
blanks and hyphens removed), house number, house-number suffix (missing = none) and country, and,
when ``households.same_family_name`` is set, the same family name (lower case, accents folded).
The profile's address survives as a whole from one record (jobs/golden/survivorship.py), so the
key never mixes two addresses.

- A person without postcode or house number (or without family name when it is required) gets
  no household (null).
- A person alone at an address is a household of one: mailings per household then need no
  special case.
- Address groups larger than ``households.max_size`` are not households (care homes, student
  housing, a company address used by many customers): their persons get none (null), because a
  household id shared by strangers would be wrong and one per person would claim households that
  were never seen.
- ``households.enabled: false``: every household_id is null.

Household ids are opaque (never a hash of the address, which could be reversed by trying every
address). A new household's id is *anchored* like a person id (jobs/golden/ids.py): ``"H"`` + 24
hex characters of SHA-256 over ("household", the group's smallest person id). It depends only on
who lives there, not on the run that first saw them, so a household whose members never changed
household has the same id after any sequence of incremental runs as after one full run. The
anchor is the smallest person id rather than the oldest member because a person id is fixed
while the person is (a first-seen time moves when an older record turns up). An anchored id that
was issued before (golden.household_ids, which keeps every id ever issued, and the live ones) is
salted with the run's epoch instead, ("household", epoch, anchor), so an id is never handed out
twice (the anchor moved out and founds another household; a dissolved household re-forms).

With a previous assignment, ids persist by the rules of person ids (``claim_previous_ids``): each
previous household id goes to the group holding most of its persons (ties: the group with the
smallest person id); a group keeps, among the ids it may claim, the one it holds most persons of
(ties: the smallest id); other groups get a new id.

Incremental runs (:func:`households_to_recompute`) regroup only the addresses an affected person
left or joins: a person's household key is a function of their profile, so every group at an
untouched address holds exactly the persons of its previous id and keeps it, as a full run would.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.errors import require_columns
from jobs.common.keys import SEP
from jobs.common.schemas import GOLDEN_HOUSEHOLDS, GOLDEN_PROFILES, TMP
from jobs.golden.config import GoldenConfig
from jobs.golden.ids import KEPT, OVERLAP_KEY, OVERLAP_N, claim_previous_ids, opaque_id
from jobs.golden.survivorship import record_order
from jobs.standardize.text import fold_accents

log = logging.getLogger(__name__)

HOUSEHOLD_ID_PREFIX = "H"
PET_ID_PREFIX = "A"
COMPANY_ID_PREFIX = "C"

RELATION_HOUSEHOLD = "household_member"
RELATION_PET = "pet_owner"
RELATION_COMPANY = "works_at"

EXT_PET_NAME = "pet_name"
EXT_PET_SPECIES = "pet_species"
EXT_COMPANY = "company"
EXT_JOB_TITLE = "job_title"

# legal forms dropped from the end of a company name before it is hashed into a company id
LEGAL_FORMS = ("bv", "nv", "vof", "cv", "gmbh", "ag", "sa", "sarl", "ltd", "llc", "inc", "plc", "bvba")

_KEY = f"{TMP}hh_key"
_ANCHORED = f"{TMP}hh_anchored"
_USED = f"{TMP}hh_used"
_GROUP_SIZE = f"{TMP}hh_size"
_GROUP_MIN = f"{TMP}hh_min"
_PREV_HH = f"{TMP}prev_hh"


def _compact(c: Column) -> Column:
    return F.upper(F.regexp_replace(F.trim(c), r"[\s\-.]+", ""))


def household_key(same_family_name: bool) -> Column:
    """Normalised address (+ family name) of a profile row; null when no household is possible."""
    postcode, number = _compact(F.col("postcode")), _compact(F.col("house_number"))
    parts = [
        postcode,
        number,
        F.coalesce(_compact(F.col("house_number_suffix")), F.lit("")),
        F.coalesce(_compact(F.col("country")), F.lit("")),
    ]
    present = postcode.isNotNull() & (postcode != "") & number.isNotNull() & (number != "")
    if same_family_name:
        family = F.lower(fold_accents(F.trim(F.col("family_name"))))
        parts.append(family)
        present = present & family.isNotNull() & (family != "")
    return F.when(present, F.concat_ws(SEP, *parts))


def anchored_household_id(anchor_person_id: Column) -> Column:
    """The id of a new household whose smallest person id is ``anchor_person_id``."""
    return opaque_id(HOUSEHOLD_ID_PREFIX, "household", anchor_person_id)


def salted_household_id(epoch: int, anchor_person_id: Column) -> Column:
    """The new id when the anchored one was issued before: salted with the run's epoch."""
    return opaque_id(HOUSEHOLD_ID_PREFIX, "household", F.lit(str(int(epoch))), anchor_person_id)


def previous_households(households_table: DataFrame) -> DataFrame:
    """GOLDEN_HOUSEHOLDS -> (person_id, household_id) of its household_member rows."""
    return households_table.where(F.col("relation") == RELATION_HOUSEHOLD).select(
        "person_id", F.col("related_id").alias("household_id")
    )


def assign_households(
    profiles: DataFrame,
    cfg: GoldenConfig,
    previous: DataFrame | None = None,
    epoch: int = 0,
    issued: DataFrame | None = None,
) -> DataFrame:
    """(person_id, household_id) for every profile; rules in the module docstring.

    ``previous`` is (person_id, household_id) of the last run (:func:`previous_households`);
    its ids count as issued. ``issued`` (a household_id column: golden.household_ids) are the
    other ids issued before: an anchored id among them is salted with ``epoch`` (the job passes
    the epoch of person ids). ``profiles`` must hold every person of each address group it
    names (a group is regrouped as a whole).
    """
    hh = cfg.households
    require_columns(["person_id", "postcode", "house_number", "house_number_suffix", "country", "family_name"],
                    profiles.columns, "assign_households(profiles)")
    if not hh.enabled:
        return profiles.select("person_id", F.lit(None).cast("string").alias("household_id"))
    keyed = profiles.select("person_id", household_key(hh.same_family_name).alias(_KEY))
    by_key = Window.partitionBy(_KEY)
    groups = (
        keyed.where(F.col(_KEY).isNotNull())
        .withColumns(
            {_GROUP_SIZE: F.count(F.lit(1)).over(by_key), _GROUP_MIN: F.min("person_id").over(by_key)}
        )
        .where(F.col(_GROUP_SIZE) <= F.lit(hh.max_size))
    )
    spark = profiles.sparkSession
    if previous is None:
        previous = spark.createDataFrame([], "person_id string, household_id string")
    prev = previous.where(F.col("household_id").isNotNull()).select("person_id", F.col("household_id").alias(_PREV_HH))
    used = prev.select(F.col(_PREV_HH).alias(_ANCHORED))
    if issued is not None:
        used = used.unionByName(issued.select(F.col("household_id").alias(_ANCHORED)))
    used = used.distinct().withColumn(_USED, F.lit(True))
    overlaps = (
        groups.join(prev, "person_id")
        .groupBy(_KEY, _PREV_HH)
        .agg(F.count(F.lit(1)).alias(OVERLAP_N), F.min(_GROUP_MIN).alias(OVERLAP_KEY))
    )
    _, claims = claim_previous_ids(overlaps, _KEY, _PREV_HH)
    fresh = F.when(F.col(_USED).isNull(), F.col(_ANCHORED)).otherwise(salted_household_id(epoch, F.col(_GROUP_MIN)))
    with_ids = (
        groups.join(claims, _KEY, "left")
        .withColumn(_ANCHORED, anchored_household_id(F.col(_GROUP_MIN)))
        .join(used, _ANCHORED, "left")
        .withColumn("household_id", F.coalesce(F.col(KEPT), fresh))
    )
    return keyed.join(with_ids.select("person_id", "household_id"), "person_id", "left").select(
        "person_id", "household_id"
    )


def attach_households(profiles: DataFrame, households: DataFrame) -> DataFrame:
    """GOLDEN_PROFILES with household_id from :func:`assign_households` (same columns and order)."""
    assigned = households.select("person_id", F.col("household_id").alias(f"{TMP}household_id"))
    return (
        profiles.join(assigned, "person_id", "left")
        .withColumn("household_id", F.col(f"{TMP}household_id"))
        .select(*GOLDEN_PROFILES.column_names)
    )


def company_key(name: Column) -> Column:
    """Normalised company name: lower case, accents folded, punctuation out, legal form dropped."""
    s = F.lower(fold_accents(F.trim(name)))
    s = F.trim(F.regexp_replace(F.regexp_replace(s, r"[^\p{L}\p{N}\s]+", ""), r"\s+", " "))
    legal = "|".join(LEGAL_FORMS)
    s = F.trim(F.regexp_replace(s, rf"(\s+({legal}))+$", ""))
    return F.nullif(s, F.lit(""))


def _pet_key(name: Column) -> Column:
    s = F.trim(F.regexp_replace(F.lower(fold_accents(F.trim(name))), r"\s+", " "))
    return F.nullif(s, F.lit(""))


def households_to_recompute(
    new_profiles: DataFrame, old_profiles: DataFrame, scope: DataFrame, cfg: GoldenConfig
) -> DataFrame:
    """(person_id) of every person whose household an incremental run must regroup.

    ``scope``: the persons whose profile was rebuilt or removed. Their address groups (household
    keys) before and after, and everyone in the new profiles at one of those addresses, plus the
    scope persons themselves (one who lost the address loses the household). Other groups keep
    their ids (module docstring).
    """
    hh = cfg.households
    ids = scope.select("person_id").distinct()
    key = household_key(hh.same_family_name)
    new_keys = new_profiles.select("person_id", key.alias(_KEY))
    old_keys = old_profiles.select("person_id", key.alias(_KEY))
    touched = (
        new_keys.join(ids, "person_id", "left_semi")
        .unionByName(old_keys.join(ids, "person_id", "left_semi"))
        .where(F.col(_KEY).isNotNull())
        .select(_KEY)
        .distinct()
    )
    at_touched = new_keys.join(touched, _KEY, "left_semi").select("person_id")
    alive = new_profiles.select("person_id")
    return at_touched.unionByName(ids.join(alive, "person_id", "left_semi")).distinct()


def household_members(households: DataFrame, persons: DataFrame, run_id: str) -> DataFrame:
    """GOLDEN_HOUSEHOLDS household_member rows: one per person of ``persons`` with a household."""
    member = households.where(F.col("household_id").isNotNull()).join(
        persons.select("person_id"), "person_id", "left_semi"
    ).select(
        "person_id",
        F.lit(RELATION_HOUSEHOLD).alias("relation"),
        F.col("household_id").alias("related_id"),
        F.lit(None).cast("string").alias("related_name"),
        F.create_map().cast("map<string,string>").alias("attributes"),
    )
    return _as_households(member.withColumn("run_id", F.lit(run_id)))


def changed_relation_persons(new: DataFrame, old: DataFrame) -> DataFrame:
    """(person_id) whose GOLDEN_HOUSEHOLDS rows differ between ``new`` and ``old`` (run_id aside).

    A person in one frame only counts as changed. Compared per person as a whole (a sorted list of
    (relation, related_id, related_name, sorted attributes)), so the job replaces a person's rows
    together: delete by person id, append the new ones.
    """
    def rows_of(df: DataFrame) -> DataFrame:
        entry = F.struct(
            F.col("relation"), F.col("related_id"), F.col("related_name"),
            F.array_sort(F.map_entries(F.col("attributes"))).alias("attributes"),
        )
        return df.groupBy("person_id").agg(
            F.sha2(F.to_json(F.array_sort(F.collect_list(entry))), 256).alias(f"{TMP}rel_fp")
        )

    n = rows_of(new)
    o = rows_of(old).withColumnRenamed(f"{TMP}rel_fp", f"{TMP}rel_fp_old")
    return (
        n.join(o, "person_id", "full_outer")
        .where(
            F.col(f"{TMP}rel_fp").isNull()
            | F.col(f"{TMP}rel_fp_old").isNull()
            | (F.col(f"{TMP}rel_fp") != F.col(f"{TMP}rel_fp_old"))
        )
        .select("person_id")
    )


def relationships(
    profiles: DataFrame,
    records: DataFrame,
    identity_map: DataFrame,
    households: DataFrame,
    run_id: str,
) -> DataFrame:
    """GOLDEN_HOUSEHOLDS rows of this run, for the persons of ``profiles``:
    :func:`household_members` and :func:`person_relations`."""
    persons = profiles.select("person_id")
    return household_members(households, persons, run_id).unionByName(
        person_relations(persons, records, identity_map, run_id)
    )


def person_relations(
    persons: DataFrame,
    records: DataFrame,
    identity_map: DataFrame,
    run_id: str,
) -> DataFrame:
    """GOLDEN_HOUSEHOLDS rows other than household membership, for ``persons`` (a person_id column).

    They depend on the person's own records only.

    - pet_owner: one row per distinct pet (name compared in lower case, accents folded) found in
      the extensions ``pet_name``/``pet_species`` of any of the person's records, since a person
      may name different pets in different sources. related_id = "A" + hash(person id, pet
      name); the name and species come from the most trusted, then most recent record naming
      that pet (species: the first such record that has one);
    - works_at: the person's current employer: the extension ``company`` of the most trusted,
      then most recent record that has one, with that record's ``job_title`` (so title and company
      never come from different records). related_id = "C" + hash(normalised company name,
      :func:`company_key`), the same for every employee of a company.

    attributes holds only non-null values ({species: ...}, {job_title: ...}).
    """
    persons = persons.select("person_id")
    recs = records.join(identity_map.select("record_key", "person_id"), "record_key").join(
        persons, "person_id", "left_semi"
    )
    ext = F.col("extensions")
    pet_name, species = F.trim(ext[EXT_PET_NAME]), F.trim(ext[EXT_PET_SPECIES])
    order = record_order("source_trust")
    pets = (
        recs.withColumn(f"{TMP}pet", _pet_key(pet_name))
        .where(F.col(f"{TMP}pet").isNotNull())
        .groupBy("person_id", f"{TMP}pet")
        .agg(
            F.min_by(F.struct(pet_name.alias("v")), order)["v"].alias("related_name"),
            F.min_by(F.struct(species.alias("v")), F.when(species.isNotNull() & (species != ""), order))["v"].alias(
                f"{TMP}species"
            ),
        )
        .select(
            "person_id",
            F.lit(RELATION_PET).alias("relation"),
            opaque_id(PET_ID_PREFIX, "pet", F.col("person_id"), F.col(f"{TMP}pet")).alias("related_id"),
            "related_name",
            _attributes("species", F.col(f"{TMP}species")).alias("attributes"),
        )
    )
    company = F.trim(ext[EXT_COMPANY])
    job_title = F.trim(ext[EXT_JOB_TITLE])
    employers = (
        recs.where(company_key(company).isNotNull())
        .groupBy("person_id")
        .agg(F.min_by(F.struct(company.alias("company"), job_title.alias("title")), order).alias(f"{TMP}job"))
        .select(
            "person_id",
            F.lit(RELATION_COMPANY).alias("relation"),
            opaque_id(COMPANY_ID_PREFIX, "company", company_key(F.col(f"{TMP}job.company"))).alias("related_id"),
            F.col(f"{TMP}job.company").alias("related_name"),
            _attributes("job_title", F.nullif(F.col(f"{TMP}job.title"), F.lit(""))).alias("attributes"),
        )
    )
    return _as_households(pets.unionByName(employers).withColumn("run_id", F.lit(run_id)))


def _as_households(df: DataFrame) -> DataFrame:
    return df.select(*[F.col(c.name).cast(c.dtype).alias(c.name) for c in GOLDEN_HOUSEHOLDS.columns])


def _attributes(key: str, value: Column) -> Column:
    """{key: value}, or {} when the value is null or blank."""
    return F.map_filter(F.create_map(F.lit(key), value), lambda _k, v: v.isNotNull() & (v != ""))
