"""Big Bazaar cleaning of one Polars chunk at a time, value for value what ``clean_bigbazaar`` gives (pandas).

``BigBazaarCleaner.clean(chunk)`` returns the kept rows (the clean-chunk contract: the columns and dtypes of
``clean_bigbazaar(...).clean`` with transactionDate as Date) and the dropped rows (``row_id``, ``customerID``,
``reason``, then the raw columns). Each drop rule of ``pipeline.sources.cleaning.clean_bigbazaar`` is one Polars
condition over columns parsed once per chunk; one ``when/then`` chain in the pandas step order gives each row its
first true rule, and the reason texts are built for the dropped rows only. Dates and states are parsed per
distinct value. Cost: about 0.45 s of CPU per 250k-row chunk on the 2-core development machine.
Two rules need the whole input and are given to the cleaner or gathered across chunks:

- "too large to sum": |v| > float64 max / ``n_rows_total`` (the whole table's row count, ``scan_bigbazaar_summary``);
- "mostly unparseable": per-column counters (non-blank cells, unparseable cells, the first 3 distinct bad texts)
  merge over chunks; ``check_parseable()`` raises the pandas ValueError after the last chunk.

The segmenter's settings are fixed: ``drop_missing_age=True`` (Age is never missing in the clean rows).

Known differences from the pandas cleaner (all outside the golden files):

- a reason quoting a number of a numeric column quotes the file's text. pandas quotes its parsed float
  (``'1e+300'`` for a file's ``1e300``) when read_csv inferred the whole column as numbers; typed in-memory
  columns are quoted exactly as pandas does (``repr`` of the float);
- ISO 8601 dates follow pandas' parser for the forms ``YYYY``, ``YYYY-M``, ``YYYY-M-D`` (separator ``-``, ``/``,
  ``.``, ``\\`` or blank, the same twice), ``YYYYMMDD``, each with an optional time ``[T ]hh[:mm[:ss[.f]]]``;
  a time zone suffix or a negative year is unparseable here, and years outside pandas' timestamp range are
  accepted here;
- a bool-typed in-memory column is quoted ``'true'`` (pandas ``'True'``).

Like pandas, an integer-valued number beyond int64 (``1e20`` as store_code) is kept as int64 min (numpy's cast).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from pipeline.sources.cleaning import (
    BIGBAZAAR_CLEAN_COLUMNS,
    BIGBAZAAR_DROPPED_COLUMNS,
    BIGBAZAAR_INTEGER_COLUMNS,
    DEFAULT_AGE_RANGE,
    MAX_UNPARSEABLE_SHARE,
    NON_ASCII_ID_REASON,
    PROMO_CODE_WORDS,
    REASON,
    STATE_PLACEHOLDERS,
    check_age_range,
)
from pipeline.sources.loading import BIGBAZAAR_COLUMNS, ROW_ID, require_columns

logger = logging.getLogger(__name__)

# Python's str.isspace() characters: what pandas' str.strip() removes and what re's \s matches.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
WHITESPACE_RUN = "[" + "".join(f"\\x{{{ord(char):x}}}" for char in PYTHON_WHITESPACE) + "]+"
# clean_bigbazaar's id pattern ^(?:BBID_)?([0-9]{1,18})$ as "strip the prefix, then all ASCII digits".
ID_PREFIX = "BBID_"
ASCII_ID_DIGITS = r"^[0-9]{1,18}$"
NON_ASCII_DIGIT = r"[\d&&[^0-9]]"  # a Unicode decimal digit that is not 0-9 (re's (?![0-9])\d)
# pandas' ISO 8601 forms: year[-month[-day]] with one separator used twice, or YYYYMMDD; optional time.
_TIME = r"(?:[T ]([0-9]{1,2})(?::([0-9]{1,2})(?::([0-9]{1,2})(?:\.[0-9]*)?)?)?)?"
ISO_SEPARATED = r"^([0-9]{4})(?:([-/. \\])([0-9]{1,2})(?:([-/. \\])([0-9]{1,2})" + _TIME + r")?)?$"
ISO_COMPACT = r"^([0-9]{4})([0-9]{2})([0-9]{2})" + _TIME + r"$"
PLAIN_ISO_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
FLOAT64_MAX = float(np.finfo(np.float64).max)
INT64_MIN = int(np.iinfo(np.int64).min)
TWO_POW_63 = 2.0 ** 63
# The columns parsed as numbers or dates, in the pandas step order (the order their parseability is checked).
NUMBER_COLUMNS = ("PinCode", *BIGBAZAAR_INTEGER_COLUMNS, "sale_price_after_promo")
PARSE_CHECKED_COLUMNS = ("PinCode", "transactionDate", *BIGBAZAAR_INTEGER_COLUMNS, "sale_price_after_promo")
N_EXAMPLES = 3
# The raw columns the cleaner reads (the three descriptions are dropped, as in clean_bigbazaar).
PARSED_COLUMNS = tuple(column for column in BIGBAZAAR_COLUMNS if column not in BIGBAZAAR_DROPPED_COLUMNS)


def iso8601_dates(cells: pl.Series) -> pl.Series:
    """Utf8 -> Date as ``pd.to_datetime(cells, format="ISO8601", errors="coerce")`` then the day (null where
    pandas gives NaT), surrounding whitespace ignored; the forms are listed in the module docstring.
    ``YYYY-MM-DD`` takes a fast path, the general regex runs only on the other non-null cells."""
    text = cells.str.strip_chars(PYTHON_WHITESPACE)
    plain = text.str.contains(PLAIN_ISO_DAY).fill_null(False)
    dates = pl.select(pl.when(plain).then(text.str.to_date("%Y-%m-%d", strict=False))).to_series()
    others = (~plain & text.is_not_null()).arg_true()
    if others.len():
        dates = dates.scatter(others, _general_iso8601_dates(text.gather(others)))
    return dates.alias(text.name)


def _general_iso8601_dates(text: pl.Series) -> pl.Series:
    parts = pl.DataFrame({"text": text}).select(
        pl.col("text").str.extract_groups(ISO_SEPARATED).alias("separated"),
        pl.col("text").str.extract_groups(ISO_COMPACT).alias("compact"),
    ).unnest("separated", "compact", separator=":")
    separated = parts["separated:1"].is_not_null()

    def part(number: int, compact_number: int | None) -> pl.Expr:
        compact_part = pl.col(f"compact:{compact_number}") if compact_number else pl.lit(None, pl.Utf8)
        return pl.when(separated).then(pl.col(f"separated:{number}")).otherwise(compact_part)

    fields = parts.select(
        pl.coalesce("separated:1", "compact:1").alias("year"),
        part(3, 2).fill_null("1").alias("month"),
        part(5, 3).fill_null("1").alias("day"),
        part(6, 4).alias("hour"), part(7, 5).alias("minute"), part(8, 6).alias("second"),
        (pl.col("separated:4").is_null() | (pl.col("separated:2") == pl.col("separated:4"))).alias("same_separator"),
    )
    hour, minute, second = pl.col("hour"), pl.col("minute"), pl.col("second")
    valid = (
        pl.col("year").is_not_null() & pl.col("same_separator")
        & (hour.is_null() | (hour.str.len_chars() == 2) | minute.is_not_null())  # 'T1' alone is not a time
        & (hour.cast(pl.Int32).fill_null(0) < 24)
        & (minute.cast(pl.Int32).fill_null(0) < 60)
        & (second.cast(pl.Int32).fill_null(0) < 60)
    )
    day_text = pl.concat_str("year", pl.col("month").str.zfill(2), pl.col("day").str.zfill(2), separator="-")
    return fields.select(pl.when(valid).then(day_text.str.to_date("%Y-%m-%d", strict=False))).to_series()


@dataclass
class _ParseCounter:
    """Mergeable counts of one parsed column: non-blank cells, unparseable ones, first distinct bad texts."""

    n_present: int = 0
    n_bad: int = 0
    examples: list[str] = field(default_factory=list)

    def merge(self, other: "_ParseCounter") -> None:
        """Add another shard's counts (shards merged in input order keep the first bad texts of the input)."""
        self.add(other.n_present, other.n_bad, other.examples)

    def add(self, n_present: int, n_bad: int, examples: list[str]) -> None:
        self.n_present += n_present
        self.n_bad += n_bad
        for example in examples:
            if len(self.examples) < N_EXAMPLES and example not in self.examples:
                self.examples.append(example)


@dataclass
class BigBazaarCleaner:
    """Clean Big Bazaar chunks like ``clean_bigbazaar(raw, age_reference_date=..., drop_missing_age=True,
    age_range=...)`` cleans the whole table.

    ``age_reference_date``: the Age reference (``scan_bigbazaar_summary``'s latest transactionDate for pandas'
    default); ``n_rows_total``: rows of the whole input (the too-large limit float64 max / n);
    ``age_range``: (low, high) years kept inclusive, or None. Age = ref.year - dob.year
    - [(ref.month, ref.day) < (dob.month, dob.day)].
    """

    age_reference_date: date
    n_rows_total: int
    age_range: tuple[float, float] | None = DEFAULT_AGE_RANGE
    counters_: dict[str, _ParseCounter] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.age_bounds_ = check_age_range(self.age_range)
        if isinstance(self.n_rows_total, bool) or not isinstance(self.n_rows_total, (int, np.integer)) \
                or self.n_rows_total < 0:
            raise ValueError(f"n_rows_total must be a non-negative integer, got {self.n_rows_total!r}")
        if not isinstance(self.age_reference_date, date):
            raise ValueError(f"age_reference_date must be a datetime.date, got {self.age_reference_date!r}")
        self.counters_ = {column: _ParseCounter() for column in PARSE_CHECKED_COLUMNS}
        self.too_large_limit_ = FLOAT64_MAX / max(int(self.n_rows_total), 1)

    def clean(self, chunk: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(clean rows, dropped rows) of one chunk (``row_id`` first, then the 16 Big Bazaar columns, as text
        or typed). Clean: BIGBAZAAR_CLEAN_COLUMNS with Int64 ids and codes, Float64 price, Date transactionDate.
        Dropped: ``row_id, customerID, reason`` then the other raw columns, values as in the chunk."""
        require_columns(chunk, (ROW_ID, *BIGBAZAAR_COLUMNS), what="Big Bazaar chunk")
        parsed = self._parsed(chunk)
        self._count_unparseable(parsed)
        steps = self._steps()
        step = pl.when(steps[0][0]).then(pl.lit(0, pl.Int32))
        for index, (condition, _) in enumerate(steps[1:], start=1):
            step = step.when(condition).then(pl.lit(index, pl.Int32))
        first_step = parsed.select(step.alias("step")).to_series()
        kept = first_step.is_null()
        clean = parsed.filter(kept).select(
            pl.col(ROW_ID).cast(pl.Int64),
            pl.col("digits:customerID").cast(pl.Int64).alias("customerID"),
            pl.col("text:Gender").fill_null("0").alias("Gender"),
            *(_as_int64(pl.col(f"number:{column}")).alias(column)
              for column in ("PinCode", *BIGBAZAAR_INTEGER_COLUMNS)),
            _as_int64(pl.col("number:promo_code")).alias("promo_code"),
            pl.col("number:sale_price_after_promo").alias("sale_price_after_promo"),
            pl.col("text:discountUsed").alias("discountUsed"),
            pl.col("age").alias("Age"),
            pl.col("date:transactionDate").dt.week().cast(pl.Int64).alias("Week"),
            pl.col("date:transactionDate").dt.month().cast(pl.Int64).alias("Month"),
            pl.col("date:transactionDate").alias("transactionDate"),
            pl.col("state").alias("State"),
        ).select(BIGBAZAAR_CLEAN_COLUMNS)
        reason = pl.when(pl.col("step") == 0).then(steps[0][1])
        for index, (_, text_of_reason) in enumerate(steps[1:], start=1):
            reason = reason.when(pl.col("step") == index).then(text_of_reason)
        reasons = parsed.with_columns(first_step.alias("step")).filter(~kept).select(reason).to_series()
        leading = [ROW_ID, "customerID"]
        dropped = chunk.filter(~kept).select(
            *leading, reasons.alias(REASON), *(column for column in chunk.columns if column not in leading)
        )
        return clean, dropped

    def _parsed(self, chunk: pl.DataFrame) -> pl.DataFrame:
        """The chunk's cells as text (``text:<column>``), numbers (``_parse_number``: typed numbers as they are,
        text as ``pd.to_numeric``; NaN -> null), dates, customer digits and Age, each computed once per chunk."""
        schema = chunk.schema
        typed_numbers = [column for column in NUMBER_COLUMNS if schema[column].is_numeric()]
        texts = chunk.select(
            pl.col(ROW_ID),
            *(_text(column, schema[column]).alias(f"text:{column}") for column in PARSED_COLUMNS),
            *(pl.col(column).cast(pl.Float64).fill_nan(None).alias(f"number:{column}") for column in typed_numbers),
        )
        customers = texts["text:customerID"].str.strip_prefix(ID_PREFIX)
        digits = pl.select(pl.when(customers.str.contains(ASCII_ID_DIGITS)).then(customers)).to_series()
        dates = {column: _dates(chunk[column], texts[f"text:{column}"]) for column in ("transactionDate", "DOB")}
        return texts.with_columns(
            digits.alias("digits:customerID"),
            *(pl.col(f"text:{column}").cast(pl.Float64, strict=False).fill_nan(None).alias(f"number:{column}")
              for column in NUMBER_COLUMNS if column not in typed_numbers),
            _promo_codes(pl.col("text:promo_code")).alias("number:promo_code"),
            *(dates[column].alias(f"date:{column}") for column in dates),
            _per_distinct(texts["text:State"], _normalised_state).alias("state"),
        ).with_columns(_whole_years(pl.col("date:DOB"), self.age_reference_date).alias("age"))

    def _steps(self) -> list[tuple[pl.Expr, pl.Expr]]:
        """(condition, reason) of every drop in clean_bigbazaar's step order, over ``_parsed``'s columns."""
        def text(column: str) -> pl.Expr:
            return pl.col(f"text:{column}")

        customer, dob, age = text("customerID"), text("DOB"), pl.col("age")
        no_digits = pl.col("digits:customerID").is_null()
        promo = pl.col("number:promo_code")
        steps = [
            (customer.is_null(), pl.lit("missing customerID")),
            (no_digits & customer.str.contains(NON_ASCII_DIGIT), _quoted(NON_ASCII_ID_REASON, customer)),
            (no_digits, _quoted("unparseable customerID", customer)),
            (dob.is_null() & text("PinCode").is_null(), pl.lit("missing DOB and PinCode")),
            (dob.is_null(), pl.lit("missing DOB")),
            (text("PinCode").is_null(), pl.lit("missing PinCode")),
            *self._number_steps("PinCode", integer=True),
            (text("transactionDate").is_null(), pl.lit("missing transactionDate")),
            (pl.col("date:transactionDate").is_null(), _quoted("unparseable transactionDate", text("transactionDate"))),
            *(step for column in BIGBAZAAR_INTEGER_COLUMNS for step in self._number_steps(column, integer=True)),
            *self._number_steps("sale_price_after_promo", integer=False),
            (promo.is_null() | promo.is_infinite() | (promo != promo.floor()),
             _quoted("unparseable promo_code", text("promo_code"))),
            (text("discountUsed").is_null(), pl.lit("missing discountUsed")),
            (age < 0, pl.concat_str(
                _quoted("DOB", dob), pl.lit(f" is after the age reference date {self.age_reference_date}"))),
            (age.is_null() & dob.is_not_null() & (dob.str.to_uppercase() == "NANA"),
             pl.concat_str(_quoted("DOB", dob), pl.lit(" (no Age)"))),
            (age.is_null() & dob.is_not_null(), pl.concat_str(_quoted("unparseable DOB", dob), pl.lit(" (no Age)"))),
        ]
        if self.age_bounds_ is not None:
            low, high = self.age_bounds_
            steps.append(((age < low) | (age > high), pl.lit(f"implausible Age (outside {low:g}-{high:g})")))
        return steps

    def merge_counters(self, counters: dict[str, _ParseCounter]) -> None:
        """Add the parse counters of a cleaner that cleaned another shard of the same input (see check_parseable)."""
        for column, counter in counters.items():
            self.counters_[column].merge(counter)

    def check_parseable(self) -> None:
        """Raise clean_bigbazaar's ValueError for the first column (in step order) whose non-blank cells were,
        over every chunk cleaned so far, more than MAX_UNPARSEABLE_SHARE unparseable."""
        for column in PARSE_CHECKED_COLUMNS:
            counter = self.counters_[column]
            if counter.n_present and counter.n_bad > MAX_UNPARSEABLE_SHARE * counter.n_present:
                kind = "dates (ISO8601)" if column == "transactionDate" else "numbers"
                raise ValueError(
                    f"column {column!r} is mostly unparseable: {counter.n_bad} of its {counter.n_present} "
                    f"non-blank values are not {kind} (e.g. {counter.examples}); the column mapping looks wrong"
                )

    def _number_steps(self, column: str, *, integer: bool) -> list[tuple[pl.Expr, pl.Expr]]:
        """``_parse_number``'s drops of one column: missing, non-numeric, non-finite, too large, non-integer."""
        value, cell = pl.col(f"number:{column}"), pl.col(f"text:{column}")
        steps = [
            (cell.is_null(), pl.lit(f"missing {column}")),
            (value.is_null(), _quoted(f"non-numeric {column}", cell)),
            (value.is_infinite(), _quoted(f"non-finite {column}", cell)),
            (value.abs() > self.too_large_limit_, pl.concat_str(
                _quoted(f"too large {column}", cell),
                pl.lit(f" (a sum over {self.n_rows_total} rows could overflow)"))),
        ]
        if integer:
            steps.append((value != value.floor(), _quoted(f"non-integer {column}", cell)))
        return steps

    def _count_unparseable(self, parsed: pl.DataFrame) -> None:
        """Add the chunk's non-blank and unparseable cells (and first bad texts) to the per-column counters."""
        aggregates = []
        for column in PARSE_CHECKED_COLUMNS:
            cell = pl.col(f"text:{column}")
            value = pl.col(f"date:{column}" if column == "transactionDate" else f"number:{column}")
            bad = cell.is_not_null() & value.is_null()
            aggregates += [
                cell.is_not_null().sum().alias(f"{column}:present"),
                bad.sum().alias(f"{column}:bad"),
                cell.filter(bad).unique(maintain_order=True).head(N_EXAMPLES).implode().alias(f"{column}:examples"),
            ]
        counts = parsed.select(aggregates).row(0, named=True)
        for column in PARSE_CHECKED_COLUMNS:
            self.counters_[column].add(
                int(counts[f"{column}:present"]), int(counts[f"{column}:bad"]), list(counts[f"{column}:examples"])
            )


def _text(column: str, dtype: pl.DataType) -> pl.Expr:
    """``_as_text``: the cell as stripped text, blank or missing -> null; numbers written as pandas writes them."""
    values = pl.col(column)
    if dtype == pl.Utf8:
        # replace("", None) costs half of when(stripped != "").then(stripped), for the same column
        return values.str.strip_chars(PYTHON_WHITESPACE).replace("", None)
    if dtype.is_float():
        return values.fill_nan(None).map_batches(_python_float_text, return_dtype=pl.Utf8)
    return values.cast(pl.Utf8)


def _python_float_text(values: pl.Series) -> pl.Series:
    """Floats as Python's repr writes them ('1e-05', '1e+300'), nulls kept; pandas' astype('string')."""
    texts = pl.Series(values.name, values.to_numpy().astype(str))
    return pl.select(pl.when(values.is_not_null()).then(texts)).to_series().alias(values.name)


def _dates(raw: pl.Series, text: pl.Series) -> pl.Series:
    """A date column as Date: typed dates as they are, text through ``iso8601_dates``."""
    if raw.dtype == pl.Date:
        return raw
    if isinstance(raw.dtype, pl.Datetime):
        return raw.dt.date()
    return _per_distinct(text, iso8601_dates)


def _quoted(prefix: str, text: pl.Expr) -> pl.Expr:
    """Per-row reason ``"<prefix> '<value>'"``."""
    return pl.concat_str(pl.lit(prefix + " '"), text, pl.lit("'"))


def _promo_codes(text: pl.Expr) -> pl.Expr:
    """NONPROMO -> 0, LOCALPROMO -> 1, missing -> 0, other text as a number (null if not a number)."""
    word_codes = text.str.to_uppercase().replace_strict(
        {word: float(code) for word, code in PROMO_CODE_WORDS.items()}, default=None, return_dtype=pl.Float64
    )
    numbers = text.cast(pl.Float64, strict=False).fill_nan(None)
    return pl.when(text.is_null()).then(pl.lit(0.0)).otherwise(pl.coalesce(word_codes, numbers))


def _as_int64(values: pl.Expr) -> pl.Expr:
    """float64 -> int64 as numpy casts on x86: values beyond int64 become int64 min."""
    return pl.when(values.abs() < TWO_POW_63).then(values.cast(pl.Int64, strict=False)).otherwise(pl.lit(INT64_MIN))


def _whole_years(birth_dates: pl.Expr, reference: date) -> pl.Expr:
    """Completed years from each birth date to ``reference`` (null where no birth date).

    age = ref.year - dob.year - [(ref.month, ref.day) < (dob.month, dob.day)]
    """
    before_birthday = (birth_dates.dt.month() > reference.month) | (
        (birth_dates.dt.month() == reference.month) & (birth_dates.dt.day() > reference.day)
    )
    return pl.lit(reference.year, pl.Int64) - birth_dates.dt.year().cast(pl.Int64) - before_birthday.cast(pl.Int64)


def _normalised_state(text: pl.Series) -> pl.Series:
    """Upper-cased, runs of whitespace collapsed to one blank; blanks and STATE_PLACEHOLDERS -> null."""
    upper = text.str.to_uppercase().str.replace_all(WHITESPACE_RUN, " ")
    return pl.select(pl.when(text.is_not_null() & ~upper.is_in(list(STATE_PLACEHOLDERS))).then(upper)).to_series()


def _per_distinct(values: pl.Series, transform: Callable[[pl.Series], pl.Series]) -> pl.Series:
    """``transform`` applied to the distinct values only, then mapped back to every row (dates, states: a
    chunk has few distinct ones)."""
    distinct = values.unique()
    return values.replace_strict(distinct, transform(distinct), default=None).alias(values.name)
