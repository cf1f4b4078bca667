"""Clean raw transaction tables into model-ready rows, recording every removed row with its reason.

Three sources:

- ``clean_bigbazaar``: the seed project's Big Bazaar file (``cproducts.csv`` schema), following the original
  author's steps with his evident intent (SEED_PIPELINE.md §1.3).
- ``clean_generic``: any transactions file described by a column mapping (customer id, date, amount, ...).
- ``clean_online_retail``: UCI Online Retail through ``ONLINE_RETAIL_MAPPING`` plus its own rules.

Every cleaner returns a ``CleanResult`` in which ``n_input == len(clean) + len(dropped)``. A row is never
removed silently: a row with several problems is reported with the first one found, in the order of the steps.

Data-quality rules (so that data errors never become segments of their own):

- **Implausible ages** (Big Bazaar): a row whose Age lies outside ``age_range`` (default 14-100 years,
  inclusive) is dropped with the reason ``"implausible Age (outside 14-100)"``; the real file has birth dates
  that give ages of 9-12 and 101-109. The row is dropped rather than kept with a missing Age because Age is a
  model column of every Big Bazaar feature set and the feature matrix takes no missing values.
  ``age_range=None`` switches the rule off (``experiment=seed_reproduction``, to match the author's file).
- **Zero- and negative-price lines** are kept: free items (price 0) and returns (price, amount or quantity
  below 0) are real events. Feature sets turn them into shares of a customer's lines (``free_item_share``,
  ``return_share``) and count spend over positive lines only (``pipeline.features.feature_sets``). UCI Online Retail
  cancellations (InvoiceNo ``C...``) are kept for the same reason: they are that data set's returns.
- **State** (Big Bazaar) is kept, upper-cased with runs of blanks collapsed; blanks and placeholders
  (``DUMMY``, ``X``, ``OTHER``, ``NA``) become missing. The customer feature set compares it with the
  store's state.
- **Extreme values** are not removed here: the scaler caps standardised values (``pipeline.features.encoding``) and
  scales in float64 without overflow. Only values float64 cannot hold (``1e400`` -> inf, or a quantity *
  unit_price product that overflows), and values so large that a sum over the table's n rows could overflow
  (|v| > float64 max / n), drop their row with a reason.
- **Dirty cells** (a non-numeric number, an unparseable date, a header line repeated inside the file) drop
  their row with a reason naming the column and the value, e.g. ``"non-numeric sale_price_after_promo '12,5x'"``.
  A column whose non-blank cells are mostly (> ``MAX_UNPARSEABLE_SHARE``) unparseable is a wrong column
  mapping, not dirt: ValueError naming the column.
- **Customer ids** (Big Bazaar) are ``BBID_`` + ASCII digits; an id with other digits (``'BBID_２０４８２'``) is
  dropped, never merged with the ASCII customer.
- **An empty table** (header only) raises ValueError starting with ``"no data rows"``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from pipeline.sources.loading import BIGBAZAAR_COLUMNS, ROW_ID, require_columns, with_row_id

logger = logging.getLogger(__name__)

REASON = "reason"

# Canonical column names of a generically cleaned frame (the feature stage relies on them).
CUSTOMER_ID = "customer_id"
DATE = "date"
AMOUNT = "amount"
QUANTITY = "quantity"
UNIT_PRICE = "unit_price"
INVOICE = "invoice"
MISSING_CATEGORY = "(missing)"

BIGBAZAAR_DROPPED_COLUMNS = ("store_description", "product_description", "promotion_description")
BIGBAZAAR_INTEGER_COLUMNS = ("store_code", "till_no", "transaction_number_by_till", "product_code")
# The cleaned Big Bazaar frame: the author's 13 model columns in his order, plus row_id, the parsed
# transactionDate and State (kept, unlike the original: customer-level recency and the address flags need them).
BIGBAZAAR_CLEAN_COLUMNS = (
    ROW_ID, "customerID", "Gender", "PinCode", "store_code", "till_no", "transaction_number_by_till",
    "promo_code", "product_code", "sale_price_after_promo", "discountUsed", "Age", "Week", "Month",
    "transactionDate", "State",
)
DEFAULT_AGE_RANGE = (14, 100)
STATE_PLACEHOLDERS = ("DUMMY", "X", "OTHER", "NA")
PROMO_CODE_WORDS = {"NONPROMO": 0, "LOCALPROMO": 1}
NON_ASCII_ID_REASON = "customerID is not BBID_ + ASCII digits:"
# A numeric or date column with more unparseable than parseable non-blank cells is a wrong column mapping.
MAX_UNPARSEABLE_SHARE = 0.5

MAPPING_KEYS = ("id", "date", "date_format", "amount", "quantity", "unit_price", "invoice", "categoricals", "numerics")

# UCI Online Retail: InvoiceDate is written as 'YYYY-MM-DD HH:MM:SS'; amount = Quantity * UnitPrice.
ONLINE_RETAIL_MAPPING: Mapping[str, Any] = MappingProxyType({
    "id": "CustomerID",
    "date": "InvoiceDate",
    "date_format": "%Y-%m-%d %H:%M:%S",
    "quantity": "Quantity",
    "unit_price": "UnitPrice",
    "invoice": "InvoiceNo",
    "categoricals": ("Country",),
    "numerics": (),
})


@dataclass
class CleanResult:
    """Kept rows, removed rows and the input count of one cleaning run.

    ``clean`` holds the kept rows with a ``row_id`` column (position in the raw input) and cleaned columns.
    ``dropped`` holds ``row_id``, the id column, ``reason`` and the raw values of every removed row.
    Invariant: ``n_input == len(clean) + len(dropped)``.
    """

    clean: pd.DataFrame
    dropped: pd.DataFrame
    n_input: int

    def __post_init__(self) -> None:
        if self.n_input != len(self.clean) + len(self.dropped):
            raise ValueError(
                f"row accounting broken: {self.n_input} input rows != {len(self.clean)} kept "
                f"+ {len(self.dropped)} dropped"
            )

    def reason_counts(self) -> dict[str, int]:
        """Number of dropped rows per reason, most frequent first."""
        return {str(reason): int(count) for reason, count in self.dropped[REASON].value_counts().items()}


class _DropLedger:
    """The drop reason of every raw row; the first reason recorded for a row wins."""

    def __init__(self, index: pd.Index) -> None:
        self.reasons = pd.Series(None, index=index, dtype=object)

    def drop(self, mask: pd.Series, reason: str | pd.Series) -> None:
        """Record ``reason`` (one string, or one per row) for the rows in ``mask`` not already dropped."""
        newly_dropped = mask.fillna(False).astype(bool) & self.reasons.isna()
        if not newly_dropped.any():
            return
        self.reasons[newly_dropped] = reason[newly_dropped] if isinstance(reason, pd.Series) else reason

    @property
    def kept(self) -> pd.Series:
        return self.reasons.isna()


def clean_bigbazaar(
    raw: pd.DataFrame,
    *,
    age_reference_date: str | date | None = None,
    drop_missing_age: bool = True,
    age_range: tuple[float, float] | None = DEFAULT_AGE_RANGE,
) -> CleanResult:
    """Clean a Big Bazaar transactions frame (the 16 columns of ``cproducts.csv``).

    Steps (SEED_PIPELINE §1.3, with the author's evident intent): ``BBID_<digits>`` (or bare digits) ->
    integer customerID; drop store/product/promotion descriptions; drop rows with a missing DOB or
    PinCode; blank Gender -> ``'0'``; promo_code NONPROMO -> 0, LOCALPROMO -> 1, other codes -> integer (zero
    padding removed), missing -> 0; ISO dates; ``Age`` = whole years from DOB to ``age_reference_date``
    (default: the latest transactionDate in the input; ``"2018-03-01"`` reproduces the author's file);
    ``Week`` = ISO week, ``Month`` = 1..12; DOB dropped. DOB ``'NANA'`` or an unparseable DOB gives no Age, and
    the row is dropped unless ``drop_missing_age=False`` (which reproduces the author's shipped 11,148-row
    file, with NaN Ages). A known Age outside ``age_range`` = (low, high) years drops the row with the reason
    ``"implausible Age (outside low-high)"``; ``None`` keeps every Age (the author's file). Unparseable dates
    and numbers are dropped with a reason. Gender and discountUsed stay strings. transactionDate is kept, parsed,
    and State is kept, normalised (``_normalise_state``); the author dropped both, and the customer feature
    set needs them for recency and the address flags.
    """
    age_bounds = check_age_range(age_range)
    require_columns(raw, BIGBAZAAR_COLUMNS, what="Big Bazaar transactions")
    _require_data_rows(raw)
    raw = with_row_id(raw)
    ledger = _DropLedger(raw.index)

    customer_text = _as_text(raw["customerID"])
    # [0-9], not \d: Unicode digits ('BBID_２０４８２') must not be read as, and merged with, ASCII customer 20482
    customer_digits = customer_text.str.extract(r"^(?:BBID_)?([0-9]{1,18})$", expand=False)
    ledger.drop(customer_text.isna(), "missing customerID")
    non_ascii_digits = customer_text.str.contains(r"(?![0-9])\d", regex=True).fillna(False).astype(bool)
    ledger.drop(customer_digits.isna() & non_ascii_digits, _quoted(NON_ASCII_ID_REASON, customer_text))
    ledger.drop(customer_digits.isna(), _quoted("unparseable customerID", customer_text))

    missing_dob, missing_pincode = _as_text(raw["DOB"]).isna(), _as_text(raw["PinCode"]).isna()
    ledger.drop(missing_dob & missing_pincode, "missing DOB and PinCode")
    ledger.drop(missing_dob, "missing DOB")
    ledger.drop(missing_pincode, "missing PinCode")

    pincode = _parse_number(raw["PinCode"], "PinCode", ledger, integer=True)
    transaction_date = _parse_date(raw["transactionDate"], "transactionDate", ledger, date_format="ISO8601")
    integers = {
        column: _parse_number(raw[column], column, ledger, integer=True) for column in BIGBAZAAR_INTEGER_COLUMNS
    }
    sale_price = _parse_number(raw["sale_price_after_promo"], "sale_price_after_promo", ledger, integer=False)
    promo_code = _parse_promo_code(raw["promo_code"], ledger)
    discount_used = _as_text(raw["discountUsed"])
    ledger.drop(discount_used.isna(), "missing discountUsed")

    reference = _age_reference(age_reference_date, transaction_date)
    age = _whole_years(_parse_birth_dates(raw["DOB"]), reference)
    dob_text = _as_text(raw["DOB"])
    ledger.drop(age < 0, _quoted("DOB", dob_text) + f" is after the age reference date {reference.date()}")
    if drop_missing_age:
        no_age = age.isna() & dob_text.notna()
        ledger.drop(no_age & (dob_text.str.upper() == "NANA"), _quoted("DOB", dob_text) + " (no Age)")
        ledger.drop(no_age, _quoted("unparseable DOB", dob_text) + " (no Age)")
    if age_bounds is not None:
        low, high = age_bounds
        ledger.drop((age < low) | (age > high), f"implausible Age (outside {low:g}-{high:g})")

    gender = _as_text(raw["Gender"]).fillna("0")
    candidate = pd.DataFrame({
        ROW_ID: raw[ROW_ID],
        "customerID": customer_digits,
        "Gender": gender,
        "PinCode": pincode,
        **integers,
        "promo_code": promo_code,
        "sale_price_after_promo": sale_price,
        "discountUsed": discount_used,
        "Age": age,
        "transactionDate": transaction_date,
        "State": _normalise_state(raw["State"]),
    })
    clean = candidate.loc[ledger.kept].copy()
    integer_columns = ["customerID", "PinCode", *BIGBAZAAR_INTEGER_COLUMNS, "promo_code"]
    clean[integer_columns] = clean[integer_columns].astype(np.int64)
    if not clean["Age"].isna().any():
        clean["Age"] = clean["Age"].astype(np.int64)
    clean["Week"] = clean["transactionDate"].dt.isocalendar().week.astype(np.int64)
    clean["Month"] = clean["transactionDate"].dt.month.astype(np.int64)
    logger.info("Big Bazaar Age reference date: %s", reference.date())
    return _assemble(raw, clean[list(BIGBAZAAR_CLEAN_COLUMNS)], ledger, id_column="customerID")


def clean_generic(raw: pd.DataFrame, mapping: Mapping[str, Any]) -> CleanResult:
    """Clean a user's transactions frame described by a column ``mapping``.

    Mapping keys: ``id`` and ``date`` (required), ``date_format`` (strftime format; default ISO 8601),
    ``amount`` (spend per row) or both ``quantity`` and ``unit_price`` (amount = quantity * unit_price),
    optional ``quantity``, ``invoice``, and lists ``categoricals`` and ``numerics``.
    The clean frame has canonical names: ``row_id, customer_id, date, amount`` [``quantity, unit_price,
    invoice``] then the categoricals (text; missing -> ``'(missing)'``) and numerics (float64) under their own
    names. Rows with a missing id, an unparseable date or a missing, non-numeric or infinite value in a numeric
    column are dropped with a reason naming the column and the value.
    """
    spec = _TransactionMapping.from_mapping(mapping)
    raw = with_row_id(raw)
    ledger = _DropLedger(raw.index)
    candidate = _clean_generic_rows(raw, spec, ledger)
    return _assemble(raw, candidate.loc[ledger.kept], ledger, id_column=spec.id)


def clean_online_retail(raw: pd.DataFrame) -> CleanResult:
    """Clean UCI Online Retail with ``ONLINE_RETAIL_MAPPING`` and the generic rules (a missing CustomerID drops
    the row).

    Cancellation invoices (InvoiceNo starting with 'C', negative Quantity) are kept: they are the customers'
    returns, which the customer feature set counts as a return share, while spend counts positive lines only.
    """
    spec = _TransactionMapping.from_mapping(ONLINE_RETAIL_MAPPING)
    raw = with_row_id(raw)
    ledger = _DropLedger(raw.index)
    candidate = _clean_generic_rows(raw, spec, ledger)
    return _assemble(raw, candidate.loc[ledger.kept], ledger, id_column=spec.id)


@dataclass(frozen=True)
class _TransactionMapping:
    """A validated column mapping for ``clean_generic``."""

    id: str
    date: str
    date_format: str | None
    amount: str | None
    quantity: str | None
    unit_price: str | None
    invoice: str | None
    categoricals: tuple[str, ...]
    numerics: tuple[str, ...]

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> _TransactionMapping:
        if not isinstance(mapping, Mapping):
            raise TypeError(f"mapping must be a Mapping of role -> column name, got {type(mapping).__name__}")
        unknown = sorted(set(map(str, mapping)) - set(MAPPING_KEYS))
        if unknown:
            raise ValueError(f"unknown mapping key(s) {unknown}; valid keys: {list(MAPPING_KEYS)}")
        for key in ("id", "date"):
            if not mapping.get(key):
                raise ValueError(f"mapping needs {key!r} (the {key} column name); got {dict(mapping)}")
        if not mapping.get("amount") and not (mapping.get("quantity") and mapping.get("unit_price")):
            raise ValueError("mapping needs 'amount', or both 'quantity' and 'unit_price' (amount = their product)")
        spec = cls(
            id=str(mapping["id"]),
            date=str(mapping["date"]),
            date_format=_optional_name(mapping.get("date_format")),
            amount=_optional_name(mapping.get("amount")),
            quantity=_optional_name(mapping.get("quantity")),
            unit_price=_optional_name(mapping.get("unit_price")),
            invoice=_optional_name(mapping.get("invoice")),
            categoricals=_name_list(mapping.get("categoricals"), "categoricals"),
            numerics=_name_list(mapping.get("numerics"), "numerics"),
        )
        used = spec.source_columns()
        repeated = sorted({column for column in used if used.count(column) > 1})
        if repeated:
            raise ValueError(f"column(s) {repeated} are mapped to more than one role")
        reserved = {ROW_ID, CUSTOMER_ID, DATE, AMOUNT, QUANTITY, UNIT_PRICE, INVOICE}
        clashing = sorted(reserved.intersection((*spec.categoricals, *spec.numerics)))
        if clashing:
            raise ValueError(f"categoricals/numerics {clashing} clash with canonical names {sorted(reserved)}")
        return spec

    def source_columns(self) -> list[str]:
        """Every raw column the mapping reads, in role order."""
        single = [self.id, self.date, self.amount, self.quantity, self.unit_price, self.invoice]
        return [column for column in single if column] + [*self.categoricals, *self.numerics]


def _clean_generic_rows(raw: pd.DataFrame, spec: _TransactionMapping, ledger: _DropLedger) -> pd.DataFrame:
    """Parse the mapped columns of every raw row, recording drop reasons; returns canonical columns."""
    require_columns(raw, spec.source_columns(), what="transactions table (per the column mapping)")
    _require_data_rows(raw)
    customer_id = _parse_customer_id(raw[spec.id])
    ledger.drop(customer_id.isna(), f"missing {spec.id}")
    parsed: dict[str, pd.Series] = {ROW_ID: raw[ROW_ID], CUSTOMER_ID: customer_id}
    parsed[DATE] = _parse_date(raw[spec.date], spec.date, ledger, date_format=spec.date_format or "ISO8601")
    if spec.amount:
        parsed[AMOUNT] = _parse_number(raw[spec.amount], spec.amount, ledger, integer=False)
    for role, column in ((QUANTITY, spec.quantity), (UNIT_PRICE, spec.unit_price)):
        if column:
            parsed[role] = _parse_number(raw[column], column, ledger, integer=False)
    if not spec.amount:
        with np.errstate(over="ignore", invalid="ignore"):
            parsed[AMOUNT] = parsed[QUANTITY] * parsed[UNIT_PRICE]
        ledger.drop(~np.isfinite(parsed[AMOUNT]), f"amount {spec.quantity} * {spec.unit_price} overflows float64")
        _drop_unsummable(parsed[AMOUNT], AMOUNT, parsed[AMOUNT].astype(str), ledger)
    if spec.invoice:
        parsed[INVOICE] = _as_text(raw[spec.invoice])
        ledger.drop(parsed[INVOICE].isna(), f"missing {spec.invoice}")
    for column in spec.categoricals:
        parsed[column] = _as_text(raw[column]).fillna(MISSING_CATEGORY)
    for column in spec.numerics:
        parsed[column] = _parse_number(raw[column], column, ledger, integer=False)
    ordered = [ROW_ID, CUSTOMER_ID, DATE, AMOUNT, QUANTITY, UNIT_PRICE, INVOICE, *spec.categoricals, *spec.numerics]
    return pd.DataFrame({name: parsed[name] for name in ordered if name in parsed})


def _assemble(raw: pd.DataFrame, clean: pd.DataFrame, ledger: _DropLedger, *, id_column: str) -> CleanResult:
    """Build the CleanResult: kept rows (re-indexed) and dropped raw rows with ``row_id, id, reason`` first."""
    dropped_mask = ~ledger.kept
    dropped = raw.loc[dropped_mask].copy()
    dropped[REASON] = ledger.reasons[dropped_mask].astype(str)
    leading = [ROW_ID, id_column, REASON]
    dropped = dropped[leading + [column for column in dropped.columns if column not in leading]]
    result = CleanResult(clean=clean.reset_index(drop=True), dropped=dropped.reset_index(drop=True), n_input=len(raw))
    logger.info("cleaning kept %d of %d rows; dropped %d", len(result.clean), result.n_input, len(result.dropped))
    for reason, count in list(result.reason_counts().items())[:10]:
        logger.info("  dropped %6d x %s", count, reason)
    return result


def _require_data_rows(raw: pd.DataFrame) -> None:
    """Raise ValueError("no data rows ...") for a table without rows; callers prefix the file name."""
    if len(raw) == 0:
        raise ValueError(f"no data rows: the table has only its header ({raw.shape[1]} columns)")


def _as_text(values: pd.Series) -> pd.Series:
    """Values as stripped text (object dtype), with missing and blank values as None."""
    text = values.astype("string").str.strip()
    text = text.where(text != "")
    return text.astype(object).where(text.notna(), None)


def _quoted(prefix: str, values: pd.Series) -> pd.Series:
    """Per-row reason strings ``"<prefix> '<value>'"``."""
    return prefix + " '" + values.astype(str) + "'"


def _parse_number(values: pd.Series, column: str, ledger: _DropLedger, *, integer: bool) -> pd.Series:
    """Parse a numeric column (float64), dropping missing, non-numeric, infinite (and non-integer) values."""
    text = _as_text(values)
    if _is_numeric(values):
        numbers = values.astype(np.float64)
    else:
        numbers = pd.to_numeric(text, errors="coerce").astype(np.float64)
    _check_mostly_parseable(column, text, numbers.isna(), "numbers")
    ledger.drop(text.isna(), f"missing {column}")
    ledger.drop(numbers.isna(), _quoted(f"non-numeric {column}", text))
    ledger.drop(np.isinf(numbers), _quoted(f"non-finite {column}", text))
    _drop_unsummable(numbers, column, text, ledger)
    if integer:
        ledger.drop(numbers % 1 != 0, _quoted(f"non-integer {column}", text))
    return numbers


def _drop_unsummable(numbers: pd.Series, column: str, text: pd.Series, ledger: _DropLedger) -> None:
    """Drop finite values too large to add up: |v| > float64 max / n (n = rows), so that no feature's sum over
    any subset of the rows (a customer's total spend) can overflow to inf. 1e300 passes up to ~1.8e8 rows."""
    limit = np.finfo(np.float64).max / max(len(numbers), 1)
    too_large = np.isfinite(numbers) & (numbers.abs() > limit)
    ledger.drop(too_large, _quoted(f"too large {column}", text) + f" (a sum over {len(numbers)} rows could overflow)")


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _parse_date(values: pd.Series, column: str, ledger: _DropLedger, *, date_format: str) -> pd.Series:
    """Parse dates with ``date_format`` (``"ISO8601"`` or a strftime format); unparseable rows are dropped."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(_as_text(values), format=date_format, errors="coerce")
    text = _as_text(values)
    _check_mostly_parseable(column, text, parsed.isna(), f"dates ({date_format})")
    ledger.drop(text.isna(), f"missing {column}")
    ledger.drop(parsed.isna(), _quoted(f"unparseable {column}", text))
    return parsed


def _check_mostly_parseable(column: str, text: pd.Series, unparsed: pd.Series, kind: str) -> None:
    """Raise ValueError when more than ``MAX_UNPARSEABLE_SHARE`` of the non-blank cells of ``column`` are not
    ``kind``: one bad cell is a dirty row (dropped), a mostly unparseable column is a wrong column mapping."""
    present = text.notna()
    n_present = int(present.sum())
    bad = present & unparsed
    n_bad = int(bad.sum())
    if n_present and n_bad > MAX_UNPARSEABLE_SHARE * n_present:
        examples = text[bad].unique()[:3].tolist()
        raise ValueError(
            f"column {column!r} is mostly unparseable: {n_bad} of its {n_present} non-blank values are not "
            f"{kind} (e.g. {examples}); the column mapping looks wrong"
        )


def _parse_birth_dates(values: pd.Series) -> pd.Series:
    """ISO dates of birth; ``'NANA'``, blanks and unparseable values become NaT (no Age)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    return pd.to_datetime(_as_text(values), format="ISO8601", errors="coerce")


def _parse_promo_code(values: pd.Series, ledger: _DropLedger) -> pd.Series:
    """NONPROMO -> 0, LOCALPROMO -> 1, missing -> 0, numeric codes -> their value ('0000971754' -> 971754)."""
    text = _as_text(values)
    words = text.str.upper().map(PROMO_CODE_WORDS)
    numbers = pd.to_numeric(text.where(words.isna()), errors="coerce")
    codes = words.fillna(numbers).where(text.notna(), 0).astype(np.float64)
    ledger.drop(codes.isna() | np.isinf(codes) | (codes % 1 != 0), _quoted("unparseable promo_code", text))
    return codes


def _parse_customer_id(values: pd.Series) -> pd.Series:
    """Customer ids: integral numbers become int64 (17850.0 -> 17850); text ids stay text; missing -> NaN."""
    if _is_numeric(values):
        numbers = values.astype(np.float64)
        finite = numbers[np.isfinite(numbers)]
        if (finite % 1 == 0).all():
            return numbers.where(np.isfinite(numbers)).astype("Int64")
        return numbers.where(np.isfinite(numbers))
    return _as_text(values)


def _age_reference(reference: str | date | None, transaction_dates: pd.Series) -> pd.Timestamp:
    """The Age reference date: the given date, or the latest parseable transaction date."""
    if reference is None:
        latest = transaction_dates.max()
        if pd.isna(latest):
            raise ValueError("no parseable transactionDate for a default Age reference date; pass age_reference_date")
        return pd.Timestamp(latest).normalize()
    try:
        return pd.Timestamp(reference).normalize()
    except (TypeError, ValueError) as error:
        raise ValueError(f"age_reference_date {reference!r} is not a date (use 'YYYY-MM-DD')") from error


def _whole_years(birth_dates: pd.Series, reference: pd.Timestamp) -> pd.Series:
    """Completed years from each birth date to ``reference`` (NaN where the birth date is NaT).

    age = ref.year - dob.year - [(ref.month, ref.day) < (dob.month, dob.day)]
    """
    before_birthday = (birth_dates.dt.month > reference.month) | (
        (birth_dates.dt.month == reference.month) & (birth_dates.dt.day > reference.day)
    )
    return (reference.year - birth_dates.dt.year - before_birthday.astype(np.float64)).astype(np.float64)


def check_age_range(age_range: tuple[float, float] | None) -> tuple[float, float] | None:
    """``age_range`` as float (low, high) bounds, or None; ValueError unless None or a pair with low < high."""
    if age_range is None:
        return None
    try:
        low, high = (float(bound) for bound in age_range)
    except (TypeError, ValueError) as error:
        raise ValueError(f"age_range must be None or (low, high) in years, got {age_range!r}") from error
    if not low < high:
        raise ValueError(f"age_range must be None or (low, high) with low < high, got {age_range!r}")
    return low, high


def _normalise_state(values: pd.Series) -> pd.Series:
    """State names upper-cased with runs of blanks collapsed ('Madhya  Pradesh' -> 'MADHYA PRADESH');
    blanks and ``STATE_PLACEHOLDERS`` become None."""
    text = _as_text(values)
    upper = text.str.upper().str.replace(r"\s+", " ", regex=True)
    return upper.where(text.notna() & ~upper.isin(STATE_PLACEHOLDERS), None)


def _optional_name(value: Any) -> str | None:
    return str(value) if value else None


def _name_list(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"mapping {key!r} must be a list of column names, got {value!r}")
    return tuple(map(str, value))
