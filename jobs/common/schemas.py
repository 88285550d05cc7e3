"""Table names, column names and schemas: the one place they are spelled (STYLE.md 8).

Every table of the design (../shared/ARCHITECTURE.md, Tables) is declared here with its schema and
a one-line description per column; docs/tables.md is generated from this module and a test fails
when the two drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# Prefix of temporary columns, so they never collide with user columns.
TMP = "__cdp_"

# --- lineage columns of bronze tables -------------------------------------------------------
RECORD_KEY = "_record_key"
SOURCE = "_source"
BATCH_ID = "_batch_id"
INGESTED_AT = "_ingested_at"
FILE = "_file"
LINE = "_line"
ROW_HASH = "_row_hash"
EXTRA = "_extra"
LINEAGE_COLUMNS = (RECORD_KEY, SOURCE, BATCH_ID, INGESTED_AT, FILE, LINE, ROW_HASH, EXTRA)

# --- identifier types ------------------------------------------------------------------------
ID_EMAIL = "email"
ID_PHONE = "phone"
ID_CUSTOMER_NUMBER = "customer_number"
ID_LOYALTY_CARD = "loyalty_card"
ID_COOKIE = "cookie_id"
ID_DEVICE = "device_id"
ID_PERSON = "person_id"
IDENTIFIER_TYPES = (ID_EMAIL, ID_PHONE, ID_CUSTOMER_NUMBER, ID_LOYALTY_CARD, ID_COOKIE, ID_DEVICE)

CONSENT_CHANNELS = ("email", "sms", "post", "phone")

# --- canonical fields a source may map to (silver.records) -----------------------------------
# name -> description. Sources map their own fields to these in conf/sources/*.yaml.
CANONICAL_FIELDS: dict[str, str] = {
    "source_id": "the source's primary key for this person",
    "title": "salutation or title as sent (dhr., mevr., dr., ...)",
    "full_name": "the whole name in one field ('Jan van der Berg', 'Berg, Jan van der')",
    "given_name": "given (first) name",
    "initials": "initials ('J.P.')",
    "name_particle": "family-name particle ('van der')",
    "family_name": "family name, possibly with its particle",
    "gender": "gender as sent (m/v/f/man/vrouw/...)",
    "birth_date": "birth date as sent (ISO, dd-mm-yyyy, dd/mm/yy, yyyymmdd)",
    "email": "e-mail address",
    "phone": "phone number as sent",
    "street": "street name",
    "house_number": "house number, possibly with a suffix ('12-A', '12 bis')",
    "house_number_suffix": "house number suffix when sent apart",
    "postcode": "postcode",
    "city": "city",
    "country": "country (ISO code or name); missing means the source's default country",
    "customer_number": "customer number (shared between CRM and webshop)",
    "loyalty_card": "loyalty card number",
    "cookie_id": "anonymous web cookie id",
    "device_id": "device id",
    "consent_email": "e-mail marketing consent as sent (true/false/ja/nee/1/0)",
    "consent_email_at": "when the e-mail consent was given or withdrawn",
    "consent_sms": "SMS consent as sent",
    "consent_sms_at": "when the SMS consent was given or withdrawn",
    "consent_post": "direct-mail consent as sent",
    "consent_post_at": "when the direct-mail consent was given or withdrawn",
    "consent_phone": "telephone marketing consent as sent",
    "consent_phone_at": "when the telephone consent was given or withdrawn",
    "created_at": "when the source created the record",
    "updated_at": "when the source last changed the record",
}

# Canonical fields of event sources.
EVENT_FIELDS: dict[str, str] = {
    "event_id": "the source's id of the event",
    "event_type": "order, receipt, email_open, email_click, page_view, login, ...",
    "event_at": "when it happened",
    "amount": "monetary amount (orders, receipts)",
    "currency": "ISO currency code",
    "email": "e-mail address the event belongs to",
    "customer_number": "customer number the event belongs to",
    "loyalty_card": "loyalty card the event belongs to",
    "cookie_id": "anonymous cookie id",
    "device_id": "device id",
    "campaign": "campaign or mailing id",
    "url": "page URL",
}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DataType
    doc: str


@dataclass(frozen=True)
class TableSpec:
    """A table of the design: where it lives, its columns and its key."""

    layer: str
    name: str
    doc: str
    columns: tuple[Column, ...] = field(default_factory=tuple)
    key: tuple[str, ...] = ()
    pii: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def schema(self) -> StructType:
        return StructType([StructField(c.name, c.dtype, True) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


S = StringType()
TS = TimestampType()
B = BooleanType()
I = IntegerType()  # noqa: E741
L = LongType()
D = DoubleType()
DT = DateType()
MAP_SS = MapType(StringType(), StringType())
ARR_S = ArrayType(StringType())
MONEY = DecimalType(18, 2)


def _c(name: str, dtype: DataType, doc: str) -> Column:
    return Column(name, dtype, doc)


def bronze_lineage_columns() -> tuple[Column, ...]:
    return (
        _c(RECORD_KEY, S, "stable hash of source name and source primary key"),
        _c(SOURCE, S, "source name from conf/sources"),
        _c(BATCH_ID, S, "batch that landed the row (ops.batches)"),
        _c(INGESTED_AT, TS, "when the row was landed (UTC)"),
        _c(FILE, S, "file or table the row came from"),
        _c(LINE, L, "line or row number in that file (1-based)"),
        _c(ROW_HASH, S, "hash of all values as received; changes when the row changes"),
        _c(EXTRA, MAP_SS, "columns the source sent that the mapping does not name (never dropped)"),
    )


BRONZE_QUARANTINE = TableSpec(
    "bronze",
    "_quarantine",
    "rows that could not be read or were refused, with the reason and the raw text",
    (
        _c("quarantine_id", S, "hash of source, file, line and raw text"),
        _c(RECORD_KEY, S, "record key where the primary key could be read, else null"),
        _c(SOURCE, S, "source name"),
        _c(BATCH_ID, S, "batch the row belonged to"),
        _c(FILE, S, "file or table"),
        _c(LINE, L, "line or row number (1-based)"),
        _c("reason", S, "why the row was not landed (malformed, wrong column count, suppressed, ...)"),
        _c("raw", S, "the row as received"),
        _c(INGESTED_AT, TS, "when it was quarantined"),
    ),
    key=("quarantine_id",),
    pii=("raw",),
)

SILVER_RECORDS = TableSpec(
    "silver",
    "records",
    "one canonical person-record schema for every source",
    (
        _c("record_key", S, "stable hash of source and source primary key"),
        _c("source", S, "source name"),
        _c("source_id", S, "the source's primary key"),
        _c("trust_rank", I, "the source's trust rank (1 = most trusted)"),
        _c("batch_id", S, "batch that landed the record"),
        _c("row_hash", S, "hash of the bronze row; a changed row is re-standardised"),
        _c("title", S, "title or salutation removed from the name (dhr, mevr, dr, ir, mr, ...)"),
        _c("gender", S, "m, f or x; from the source or derived from the salutation"),
        _c("given_name", S, "given name, cleaned, diacritics kept"),
        _c("initials", S, "initials without dots ('JP')"),
        _c("name_particle", S, "family-name particle in lower case ('van der')"),
        _c("family_name", S, "family name without its particle, diacritics kept"),
        _c("full_name", S, "normalised display name ('Jan van der Berg')"),
        _c("given_name_match", S, "match form of the given name: lower case, accents folded"),
        _c("family_name_match", S, "match form of the family name without particle"),
        _c("full_name_match", S, "match form of the whole name"),
        _c("birth_date", DT, "birth date"),
        _c("email", S, "e-mail address, lower case, domain typos corrected per config"),
        _c("phone", S, "phone number in E.164 (+31612345678)"),
        _c("street", S, "street name"),
        _c("house_number", S, "house number digits ('12')"),
        _c("house_number_suffix", S, "house number suffix in upper case ('A', 'BIS', 'HS')"),
        _c("postcode", S, "postcode in the country's format ('1234 AB', '1000', '10115')"),
        _c("city", S, "city, title case"),
        _c("city_match", S, "match form of the city"),
        _c("country", S, "ISO 3166-1 alpha-2 country code"),
        _c("customer_number", S, "customer number"),
        _c("loyalty_card", S, "loyalty card number"),
        _c("cookie_id", S, "anonymous cookie id (web records)"),
        _c("device_id", S, "device id"),
        _c("consent_email", B, "e-mail marketing consent"),
        _c("consent_email_at", TS, "when the e-mail consent statement was made"),
        _c("consent_sms", B, "SMS consent"),
        _c("consent_sms_at", TS, "when the SMS consent statement was made"),
        _c("consent_post", B, "direct-mail consent"),
        _c("consent_post_at", TS, "when the direct-mail consent statement was made"),
        _c("consent_phone", B, "telephone consent"),
        _c("consent_phone_at", TS, "when the telephone consent statement was made"),
        _c("source_created_at", TS, "when the source created the record"),
        _c("source_updated_at", TS, "when the source last changed the record"),
        _c("email_valid", B, "e-mail present and syntactically valid"),
        _c("phone_valid", B, "phone present and valid for its region"),
        _c("postcode_valid", B, "postcode present and valid for the country"),
        _c("birth_date_valid", B, "birth date present, parseable, not in the future, plausible"),
        _c("name_valid", B, "a family name is present"),
        _c("dq_flags", ARR_S, "what cleansing found: placeholder:<field>, email_domain_corrected, ..."),
        _c("extensions", MAP_SS, "extra attributes a source maps (pet_name, company, job_title, ...)"),
        _c("ingested_at", TS, "when the bronze row was landed"),
    ),
    key=("record_key",),
    pii=(
        "source_id", "given_name", "initials", "family_name", "full_name", "given_name_match",
        "family_name_match", "full_name_match", "birth_date", "email", "phone", "street",
        "house_number", "house_number_suffix", "postcode", "city", "city_match",
        "customer_number", "loyalty_card", "cookie_id", "device_id", "extensions",
    ),
)

SILVER_IDENTIFIERS = TableSpec(
    "silver",
    "identifiers",
    "identifiers of each record: e-mail, phone, customer number, loyalty card, cookie, device",
    (
        _c("record_key", S, "record the identifier belongs to"),
        _c("id_type", S, "email, phone, customer_number, loyalty_card, cookie_id, device_id"),
        _c("id_value", S, "normalised identifier value"),
        _c("source", S, "source name"),
    ),
    key=("record_key", "id_type", "id_value"),
    pii=("id_value",),
)

SILVER_EVENTS = TableSpec(
    "silver",
    "events",
    "orders, receipts, e-mail opens and clicks, page views and logins, tied to identifiers and, where the "
    "source names it (SourceConfig.owner), to the person record that owns them",
    (
        _c("event_key", S, "stable hash of source and event id"),
        _c("source", S, "source name"),
        _c("event_type", S, "order, receipt, email_open, email_click, page_view, login"),
        _c("event_at", TS, "when it happened (UTC)"),
        _c("amount", MONEY, "monetary amount"),
        _c("currency", S, "ISO currency code"),
        _c("id_type", S, "identifier type the event is tied to"),
        _c("id_value", S, "normalised identifier value the event is tied to"),
        _c("record_key", S, "record key of the event row (its bronze key)"),
        _c(
            "owner_record_key",
            S,
            "record key of the person record that owns the event (the account that placed an order, the "
            "subscriber an e-mail went to), computed from the source's owner key as ingest computes that "
            "record's key; null when the source names no owner or the event leaves its key blank",
        ),
        _c("cookie_id", S, "cookie id of web events"),
        _c("login_customer_number", S, "customer number of a login event (links a cookie)"),
        _c("campaign", S, "campaign or mailing id"),
        _c("url", S, "page URL"),
        _c("batch_id", S, "batch that landed the event"),
        _c("row_hash", S, "hash of the bronze row"),
    ),
    key=("event_key",),
    pii=("id_value", "cookie_id", "login_customer_number"),
)

SILVER_DQ_METRICS = TableSpec(
    "silver",
    "dq_metrics",
    "completeness, validity and placeholder rate per source, column and batch, over the rows the batch "
    "delivered: every person row it landed in bronze (re-sent unchanged rows and rows later batches superseded "
    "included), so a batch's metrics stay as they were when later batches arrive and full and incremental "
    "runs give the same rows. Persons sources only: the anonymous records derived from events "
    "(records_from) are no delivery. Rows erased from bronze (privacy) leave a batch's counts at the next "
    "full run",
    (
        _c("source", S, "source name"),
        _c("batch_id", S, "batch that delivered the rows"),
        _c("column", S, "canonical column"),
        _c("rows", L, "rows the batch delivered (landed in bronze)"),
        _c("filled", L, "rows with a value after cleansing (or sent and found invalid)"),
        _c("valid", L, "rows whose value passed validation (null where no check exists)"),
        _c("placeholders", L, "rows whose value was a placeholder and was nulled"),
        _c("completeness", D, "filled / rows"),
        _c("validity", D, "valid / filled"),
        _c("placeholder_rate", D, "placeholders / rows"),
        _c("run_id", S, "run that measured the batch"),
    ),
    key=("source", "batch_id", "column"),
)

MATCH_PAIRS = TableSpec(
    "match",
    "pairs",
    "scored candidate pairs; per comparison its level and weight explain the score",
    (
        _c("record_key_l", S, "left record (the smaller key)"),
        _c("record_key_r", S, "right record"),
        _c("match_weight", D, "log2 Bayes factor including the prior"),
        _c("match_probability", D, "posterior match probability"),
        _c("levels", MapType(StringType(), IntegerType()), "comparison -> level index"),
        _c("weights", MapType(StringType(), DoubleType()), "comparison -> log2 Bayes factor"),
        _c("blocking_rule", S, "first blocking rule that found the pair"),
        _c("model_version", S, "registered model version that scored the pair"),
        _c("run_id", S, "run that scored the pair"),
    ),
    key=("record_key_l", "record_key_r"),
)

MATCH_EDGES = TableSpec(
    "match",
    "edges",
    "accepted links: probabilistic above the threshold plus deterministic identifier links",
    (
        _c("record_key_l", S, "left record"),
        _c("record_key_r", S, "right record"),
        _c("edge_type", S, "probabilistic or identifier:<type>"),
        _c("match_weight", D, "match weight (null for identifier links)"),
        _c("match_probability", D, "match probability (1.0 for identifier links)"),
        _c("run_id", S, "run that accepted the edge"),
    ),
    key=("record_key_l", "record_key_r", "edge_type"),
)

MATCH_CLUSTERS = TableSpec(
    "match",
    "clusters",
    "record -> cluster after the over-merge guard",
    (
        _c("record_key", S, "record"),
        _c("cluster_id", S, "smallest record key of the cluster"),
        _c("cluster_size", L, "records in the cluster"),
        _c("guard", S, "null, or why the over-merge guard split the original component"),
        _c("run_id", S, "run that clustered"),
    ),
    key=("record_key",),
)


MATCH_TERM_COUNTS = TableSpec(
    "match",
    "term_counts",
    "records per value of each term-frequency-adjusted column, as the last match run counted them "
    "(holds record values: rewritten, never kept in old versions, by erasure)",
    (
        _c("comparison", S, "comparison name"),
        _c("value", S, "the compared value"),
        _c("n", L, "records holding it"),
        _c("run_id", S, "run that counted"),
    ),
    key=("comparison", "value"),
)

MATCH_SKIPPED_BLOCKS = TableSpec(
    "match",
    "skipped_blocks",
    "blocks above match.max_block_size in the last match run, by salted hash of the block key (no values)",
    (
        _c("blocking_rule", S, "blocking rule name"),
        _c("key_hash", S, "salted SHA-256 of the block key"),
        _c("size", L, "records in the block"),
        _c("run_id", S, "run that found it"),
    ),
    key=("blocking_rule", "key_hash"),
)

GOLDEN_IDENTITY_MAP = TableSpec(
    "golden",
    "identity_map",
    "record -> persistent person id",
    (
        _c("record_key", S, "record"),
        _c("person_id", S, "persistent opaque person id"),
        _c("first_seen_run", S, "run that first assigned the record to this person"),
        _c("run_id", S, "last run that confirmed the mapping"),
    ),
    key=("record_key",),
)

GOLDEN_ID_CHANGES = TableSpec(
    "golden",
    "id_changes",
    "change feed: new, merged, split and retired person ids per run. Every id issued in a run has exactly "
    "one new row, also an id born from a split (which has split rows as well); merged and retired ids stop "
    "appearing in golden.identity_map",
    (
        _c("run_id", S, "run"),
        _c("change", S, "new (an id issued this run), merged, split or retired"),
        _c("person_id", S, "the id the change is about; split: the id the records moved to (new or existing)"),
        _c("related_person_id", S, "merged: the surviving id; split: the id the records came from; new, retired: null"),
        _c("records", L, "new: records of the person; merged, split: records that moved; retired: its last records"),
        _c("changed_at", TS, "when"),
    ),
    key=("run_id", "change", "person_id", "related_person_id"),
)

GOLDEN_HOUSEHOLDS = TableSpec(
    "golden",
    "households",
    "person -> household, and other relationships (pets, companies)",
    (
        _c("person_id", S, "person"),
        _c("relation", S, "household_member, pet_owner, works_at, ..."),
        _c("related_id", S, "household id, or the related entity's id"),
        _c("related_name", S, "display name of the related entity (pet name, company)"),
        _c("attributes", MAP_SS, "more about the relation (species, job title)"),
        _c("run_id", S, "run"),
    ),
    key=("person_id", "relation", "related_id"),
    pii=("related_name", "attributes"),
)

GOLDEN_HOUSEHOLD_IDS = TableSpec(
    "golden",
    "household_ids",
    "every household id ever issued, so that none is issued twice (append-only; opaque ids, no PII)",
    (
        _c("household_id", S, "household id"),
        _c("run_id", S, "run that issued it"),
        _c("issued_at", TS, "when"),
    ),
    key=("household_id",),
)

SEGMENT_MEMBERSHIP = TableSpec(
    "segments",
    "membership",
    "person in segment, with history",
    (
        _c("person_id", S, "person"),
        _c("segment", S, "segment name"),
        _c("entered_at", TS, "run time the person entered"),
        _c("exited_at", TS, "run time the person left (null while a member)"),
        _c("entered_run", S, "run that added the person"),
        _c("exited_run", S, "run that removed the person"),
    ),
    key=("person_id", "segment", "entered_at"),
)

SEGMENT_EXPORTS = TableSpec(
    "segments",
    "exports",
    "manifests of audience files written per segment and run",
    (
        _c("export_id", S, "id of the export"),
        _c("segment", S, "segment"),
        _c("target", S, "email_csv or hashed_audience"),
        _c("path", S, "file written"),
        _c("rows", L, "rows in the file"),
        _c("hash_method", S, "sha256-hex of normalised values, or none"),
        _c("run_id", S, "run"),
        _c("created_at", TS, "when"),
    ),
    key=("export_id",),
)

PRIVACY_REQUESTS = TableSpec(
    "privacy",
    "requests",
    "erasure and access requests and their state",
    (
        _c("request_id", S, "request id"),
        _c("kind", S, "erasure, access or retention"),
        _c("subject_hash", S, "salted hash of the subject reference"),
        _c("state", S, "received, done, failed"),
        _c("received_at", TS, "when"),
        _c("completed_at", TS, "when"),
        _c("run_id", S, "run"),
    ),
    key=("request_id",),
)

PRIVACY_AUDIT = TableSpec(
    "privacy",
    "audit",
    "append-only audit trail: hashed subject, what was touched, verification result",
    (
        _c("request_id", S, "request"),
        _c("kind", S, "erasure, access or retention"),
        _c("subject_hash", S, "salted hash of the subject reference"),
        _c("requested_at", TS, "when the request was made"),
        _c("completed_at", TS, "when it was completed"),
        _c("tables", MapType(StringType(), LongType()), "table -> rows removed (of the whole batch, see batch_requests)"),
        _c("versions", MapType(StringType(), LongType()), "table -> version after erasure (of the whole batch)"),
        _c("rows_removed", L, "rows removed for this request (in a batch: rows of its own subject; a row of two subjects counts for both)"),
        _c("files_rewritten", L, "landing and export files rewritten"),
        _c("scan_files", L, "files scanned in verification"),
        _c("scan_hits", L, "subject values found by the scan (must be 0)"),
        _c("outcome", S, "verified, nothing_held (no record held the subject; its identifier is suppressed), failed (the scan found values, read no lake file or could not decode one), refused (nothing deleted) or exported"),
        _c("run_id", S, "run"),
        _c("records", L, "records of this request's subject removed (access: found)"),
        _c("linked_records_kept", L, "records match edges link to the subject's that resolution did not follow (a shared landline, an edge across clusters): kept"),
        _c("batch_requests", L, "requests erased together in the run; above 1, tables, versions, files and the scan are the batch's"),
    ),
)

PRIVACY_SUPPRESSION = TableSpec(
    "privacy",
    "suppression",
    "salted hashes of erased subjects' identifiers; ingest refuses rows that match",
    (
        _c("id_type", S, "identifier type"),
        _c("id_hash", S, "salted SHA-256 of the normalised value"),
        _c("request_id", S, "request that added it"),
        _c("added_at", TS, "when"),
    ),
    key=("id_type", "id_hash"),
)

OPS_RUNS = TableSpec(
    "ops",
    "runs",
    "every job run",
    (
        _c("run_id", S, "run id"),
        _c("job", S, "job name"),
        _c("parent_run_id", S, "the run of `cdp run` this job ran under"),
        _c("config_hash", S, "hash of the effective configuration"),
        _c("started_at", TS, "start"),
        _c("ended_at", TS, "end"),
        _c("status", S, "running, succeeded or failed"),
        _c("rows_in", L, "rows read"),
        _c("rows_out", L, "rows written"),
        _c("rows_quarantined", L, "rows quarantined"),
        _c("metrics", MapType(StringType(), StringType()), "more counts and figures per job"),
        _c("error", S, "the error line of a failed run"),
    ),
    key=("run_id",),
)

OPS_BATCHES = TableSpec(
    "ops",
    "batches",
    "every landed file or batch (idempotency)",
    (
        _c("batch_id", S, "batch id: hash of source, path, size and checksum"),
        _c("source", S, "source name"),
        _c("path", S, "file path or table"),
        _c("size", L, "bytes"),
        _c("checksum", S, "SHA-256 of the content (or the watermark range for JDBC)"),
        _c("rows_read", L, "rows read"),
        _c("rows_landed", L, "rows landed in bronze"),
        _c("rows_quarantined", L, "rows quarantined"),
        _c("watermark", S, "highest updated_at landed (JDBC)"),
        _c("status", S, "started (being written), landed, or rolled_back (a killed run's rows removed)"),
        _c("run_id", S, "run"),
        _c("landed_at", TS, "when"),
    ),
    key=("batch_id",),
)

PROVENANCE = StructType(
    [
        StructField("source", StringType()),
        StructField("record_key", StringType()),
        StructField("rule", StringType()),
        StructField("updated_at", TimestampType()),
    ]
)

# Attributes chosen by survivorship; each has a provenance entry.
SURVIVING_ATTRIBUTES: tuple[str, ...] = (
    "given_name", "initials", "name_particle", "family_name", "full_name", "gender", "birth_date",
    "email", "phone", "street", "house_number", "house_number_suffix", "postcode", "city", "country",
)

GOLDEN_PROFILES = TableSpec(
    "golden",
    "profiles",
    "one row per person: surviving attributes with provenance, aggregates, consent",
    (
        _c("person_id", S, "persistent person id"),
        _c("given_name", S, "surviving given name"),
        _c("initials", S, "surviving initials"),
        _c("name_particle", S, "surviving name particle"),
        _c("family_name", S, "surviving family name"),
        _c("full_name", S, "display name"),
        _c("gender", S, "m, f or x"),
        _c("birth_date", DT, "surviving birth date"),
        _c("email", S, "surviving e-mail address"),
        _c("phone", S, "surviving phone (E.164)"),
        _c("street", S, "surviving street"),
        _c("house_number", S, "surviving house number"),
        _c("house_number_suffix", S, "surviving house number suffix"),
        _c("postcode", S, "surviving postcode"),
        _c("city", S, "surviving city"),
        _c("country", S, "surviving country (ISO-2)"),
        _c("provenance", MapType(StringType(), PROVENANCE), "attribute -> source, record and rule it came from"),
        _c("identifiers", MapType(StringType(), ArrayType(StringType())), "identifier type -> every known value"),
        _c("record_count", L, "source records of the person"),
        _c("sources", ARR_S, "sources the person appears in"),
        _c("first_seen_at", TS, "earliest source timestamp"),
        _c("last_seen_at", TS, "latest source timestamp"),
        _c("orders_count", L, "webshop orders"),
        _c("orders_revenue", MONEY, "webshop revenue"),
        _c("receipts_count", L, "shop receipts (loyalty card)"),
        _c("receipts_revenue", MONEY, "shop revenue"),
        _c("total_revenue", MONEY, "orders plus receipts revenue"),
        _c("first_order_at", TS, "first order or receipt"),
        _c("last_order_at", TS, "last order or receipt"),
        _c("rfm_recency", I, "recency score 1-5 (5 = most recent)"),
        _c("rfm_frequency", I, "frequency score 1-5"),
        _c("rfm_monetary", I, "monetary score 1-5"),
        _c("rfm_cell", S, "R-F-M cell, e.g. '5-4-3'"),
        _c("email_opens", L, "e-mail opens"),
        _c("email_clicks", L, "e-mail clicks"),
        _c("last_email_engagement_at", TS, "last open or click"),
        _c("page_views", L, "web page views"),
        _c("web_logins", L, "web logins"),
        _c("last_web_visit_at", TS, "last web event"),
        _c("consent_email", B, "e-mail consent (latest statement wins)"),
        _c("consent_email_at", TS, "time of that statement"),
        _c("consent_sms", B, "SMS consent"),
        _c("consent_sms_at", TS, "time of that statement"),
        _c("consent_post", B, "direct-mail consent"),
        _c("consent_post_at", TS, "time of that statement"),
        _c("consent_phone", B, "telephone consent"),
        _c("consent_phone_at", TS, "time of that statement"),
        _c("extensions", MAP_SS, "extension attributes (pet_name, company, ...)"),
        _c("household_id", S, "household the person belongs to"),
        _c("run_id", S, "run that last changed the profile"),
        _c("updated_at", TS, "when the profile last changed"),
    ),
    key=("person_id",),
    pii=(
        "given_name", "initials", "name_particle", "family_name", "full_name", "birth_date", "email",
        "phone", "street", "house_number", "house_number_suffix", "postcode", "city", "identifiers",
        "extensions",
    ),
)

ALL_TABLES: tuple[TableSpec, ...] = (
    BRONZE_QUARANTINE,
    SILVER_RECORDS,
    SILVER_IDENTIFIERS,
    SILVER_EVENTS,
    SILVER_DQ_METRICS,
    MATCH_PAIRS,
    MATCH_EDGES,
    MATCH_CLUSTERS,
    MATCH_TERM_COUNTS,
    MATCH_SKIPPED_BLOCKS,
    GOLDEN_IDENTITY_MAP,
    GOLDEN_ID_CHANGES,
    GOLDEN_PROFILES,
    GOLDEN_HOUSEHOLDS,
    GOLDEN_HOUSEHOLD_IDS,
    SEGMENT_MEMBERSHIP,
    SEGMENT_EXPORTS,
    PRIVACY_REQUESTS,
    PRIVACY_AUDIT,
    PRIVACY_SUPPRESSION,
    OPS_RUNS,
    OPS_BATCHES,
)


def spec(address: str) -> TableSpec:
    for t in ALL_TABLES:
        if t.address == address:
            return t
    raise KeyError(f"unknown table {address!r}")
