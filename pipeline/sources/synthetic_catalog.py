"""Fixed catalogues behind the synthetic retail generator: stores, PinCodes, products and promotions.

Everything here is calibrated to the real seed file ``cproducts.csv`` (see shared/SYNTHETIC_DATA.md §3.2) and
is built from a constant seed, so a catalogue is the same for every ``generate(seed=...)`` call: a product code
or promo code means the same item in every synthetic data set.

Product pools (the unit the generator samples rows from):

- ``FMCG`` (9-digit codes), ``GM`` (10-digit codes), ``APPAREL`` (12-13-digit codes) are the three families;
- ``COOKWARE`` (part of GM) and ``HOME_TEXTILES`` (part of APPAREL) are expensive sub-pools ranked at the tail of
  their family's popularity; the generator samples the three families, and a segment that tilts its family's
  prices upwards (big-ticket home) lands on them.

Popularity inside a pool is Zipf-Mandelbrot, weight ∝ (rank + q)^-1.1. The offset q flattens the head so that
the top SKU takes about 1.2% / 0.65% / 0.4% of its family's rows, as in the real file (pure Zipf would give
the top carry bag 16% of all FMCG rows).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

logger = logging.getLogger(__name__)

CATALOG_SEED = 20180402

FMCG, GM, APPAREL, COOKWARE, HOME_TEXTILES = range(5)

ZIPF_EXPONENT = 1.1
PIN_ZIPF_EXPONENT = 1.45
PIN_LOCAL_CODES = 100


@dataclass(frozen=True)
class Store:
    """One store: identity, catchment (state, PinCode prefixes) and calibrated behaviour.

    ``opening_fraction`` is where the store opens inside the date range (0 = open from the start); with the default
    range 2015-05-01..2017-06-30 it reproduces the real opening dates. Tills are drawn from
    floor(triangular(1, till_mode, till_max + 1)).
    """

    code: int
    description: str
    state: str
    city: str
    pin_prefixes: tuple[int, ...]
    top_pin: int
    weight: float
    opening_fraction: float
    till_max: int
    till_mode: float
    promo_rate: float
    t24_rate: float
    neighbour_states: tuple[str, ...]


@dataclass(frozen=True)
class StoreSet:
    """A chain of 7 stores plus the lookup tables the dirt overlay and the segments need.

    ``t24_store`` is the home store of the T24 regulars (S8), ``visitor_store`` the one store of the out-of-state
    visitors (S7). ``foreign_regions`` lists (state, PinCode prefix, weight) outside every store's state.
    ``state_variants`` maps a clean state to (variant spelling, share under dirt="real") pairs.
    """

    name: str
    stores: tuple[Store, ...]
    t24_store: int
    visitor_store: int
    foreign_regions: tuple[tuple[str, int, float], ...]
    state_variants: dict[str, tuple[tuple[str, float], ...]]
    junk_states: tuple[tuple[str, float], ...]
    carry_bag_prefix: str

    @property
    def codes(self) -> np.ndarray:
        """Store codes, shape [S]."""
        return np.array([store.code for store in self.stores], dtype=np.int64)

    @property
    def weights(self) -> np.ndarray:
        """Row share of each store, normalised to sum 1, shape [S]."""
        weights = np.array([store.weight for store in self.stores])
        return weights / weights.sum()

    def index_of(self, code: int) -> int:
        """Position of the store with ``code`` in ``stores``."""
        return [store.code for store in self.stores].index(code)


_MAHARASHTRA = ("MAHARASHTRA",)
BIGBAZAAR = StoreSet(
    name="bigbazaar",
    stores=(
        Store(4796, "BB-HUBLI-GOKUL ROAD-AKSHAY CEN", "KARNATAKA", "HUBLI", (580, 581), 580030,
              23.1, 0.0, 19, 8.0, 0.282, 0.45, _MAHARASHTRA),
        Store(2655, "BB-INDORE-MALHAR MEGA MALL", "MADHYA PRADESH", "INDORE", (452, 453), 452001,
              23.1, 98 / 791, 24, 7.0, 0.233, 0.14, _MAHARASHTRA),
        Store(4843, "BB-JAMSHEDPUR-NH-33", "JHARKHAND", "JAMSHEDPUR", (831, 832), 831012,
              17.8, 0.0, 23, 8.0, 0.330, 0.33, ("WEST BENGAL", "BIHAR")),
        Store(4986, "BB-MADURAI-KOCHADAI VILLAGE", "TAMIL NADU", "MADURAI", (625, 626), 625016,
              14.6, 0.0, 25, 9.0, 0.263, 0.156, ("KERALA",)),
        Store(2906, "BB-INDORE-TREASURE ISLAND", "MADHYA PRADESH", "INDORE", (452, 453), 452001,
              10.5, 361 / 791, 23, 7.0, 0.229, 0.092, _MAHARASHTRA),
        Store(2615, "BB-AMRITSAR-TRILIUM MALL", "PUNJAB", "AMRITSAR", (143,), 143001,
              6.0, 133 / 791, 15, 9.0, 0.441, 0.086, ("UTTAR PRADESH", "HARYANA")),
        Store(3692, "BB-LUDHIANA-FEROZEPUR-MF", "PUNJAB", "LUDHIANA", (141,), 141001,
              4.8, 212 / 791, 15, 6.0, 0.462, 0.077, ("UTTAR PRADESH", "HARYANA")),
    ),
    t24_store=4796,
    visitor_store=4843,
    foreign_regions=(
        ("ORISSA", 751, 0.25), ("WEST BENGAL", 700, 0.25), ("BIHAR", 800, 0.20), ("UTTAR PRADESH", 226, 0.06),
        ("DELHI", 110, 0.06), ("MAHARASHTRA", 400, 0.06), ("ANDHRA PRADESH", 500, 0.04), ("GUJARAT", 380, 0.03),
        ("RAJASTHAN", 302, 0.03), ("CHATTISGARH", 492, 0.02),
    ),
    state_variants={
        "TAMIL NADU": (("TAMILNADU", 0.10),),
        "HARYANA": (("HARAYANA", 0.35),),
        "MADHYA PRADESH": (("MADHYA  PRADESH", 0.001), ("MP", 0.0005)),
        "JHARKHAND": (("Jharkhand", 0.0015),),
        "KARNATAKA": (("KARNATAK", 0.0005),),
    },
    junk_states=(("DUMMY", 0.0009), ("x", 0.0009), ("Other", 0.0002)),
    carry_bag_prefix="BB-CB-",
)

FICTIONAL = StoreSet(
    name="fictional",
    stores=(
        Store(5101, "MM-KESTRAVALE-ORCHARD ROAD-SUN CEN", "NORTH VALMORA", "KESTRAVALE", (310, 311), 310014,
              23.1, 0.0, 19, 8.0, 0.282, 0.45, ("EAST TIRAVAN",)),
        Store(5102, "MM-DARUNPUR-RIVERFRONT MALL", "CENTRAL OSKARA", "DARUNPUR", (420, 421), 420001,
              23.1, 98 / 791, 24, 7.0, 0.233, 0.14, ("EAST TIRAVAN",)),
        Store(5103, "MM-MIRELGANJ-HIGHWAY 7", "SOUTH BRENNA", "MIRELGANJ", (530, 531), 530022,
              17.8, 0.0, 23, 8.0, 0.330, 0.33, ("WEST LUMARA", "UPPER SENDA")),
        Store(5104, "MM-PORTHAVEN-LAKE VILLAGE", "COAST MERIDA", "PORTHAVEN", (640, 641), 640016,
              14.6, 0.0, 25, 9.0, 0.263, 0.156, ("INNER KALDA",)),
        Store(5105, "MM-DARUNPUR-JEWEL SQUARE", "CENTRAL OSKARA", "DARUNPUR", (420, 421), 420001,
              10.5, 361 / 791, 23, 7.0, 0.229, 0.092, ("EAST TIRAVAN",)),
        Store(5106, "MM-ASHVALE-GARDEN MALL", "WEST ASHMERE", "ASHVALE", (750,), 750001,
              6.0, 133 / 791, 15, 9.0, 0.441, 0.086, ("FAR NORAVI", "HOLT PLAINS")),
        Store(5107, "MM-BRIXFORD-STATION-MF", "WEST ASHMERE", "BRIXFORD", (760,), 760001,
              4.8, 212 / 791, 15, 6.0, 0.462, 0.077, ("FAR NORAVI", "HOLT PLAINS")),
    ),
    t24_store=5101,
    visitor_store=5103,
    foreign_regions=(
        ("WEST LUMARA", 810, 0.25), ("UPPER SENDA", 820, 0.25), ("FAR NORAVI", 830, 0.20),
        ("HOLT PLAINS", 840, 0.10), ("EAST TIRAVAN", 850, 0.10), ("INNER KALDA", 860, 0.10),
    ),
    state_variants={
        "COAST MERIDA": (("COASTMERIDA", 0.10),),
        "HOLT PLAINS": (("HOLT PLAINES", 0.35),),
        "CENTRAL OSKARA": (("CENTRAL  OSKARA", 0.001), ("CO", 0.0005)),
        "SOUTH BRENNA": (("South Brenna", 0.0015),),
        "NORTH VALMORA": (("NORTH VALMOR", 0.0005),),
    },
    junk_states=(("DUMMY", 0.0009), ("x", 0.0009), ("Other", 0.0002)),
    carry_bag_prefix="MM-CB-",
)

STORE_SETS: dict[str, StoreSet] = {BIGBAZAAR.name: BIGBAZAAR, FICTIONAL.name: FICTIONAL}


def zipf_weights(n_items: int, exponent: float, offset: float = 0.0) -> np.ndarray:
    """Zipf-Mandelbrot popularity by rank: w_k = (k + offset)^-exponent for k = 1..n_items, normalised to sum 1."""
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    weights = (ranks + offset) ** -exponent
    return weights / weights.sum()


@dataclass(frozen=True)
class PinPool:
    """Local PinCodes of one city, most popular first, with their Zipf(1.45) weights (top code ≈ 40%)."""

    codes: np.ndarray
    weights: np.ndarray


@lru_cache(maxsize=None)
def pin_pools(store_set_name: str) -> dict[str, PinPool]:
    """One PinPool per city of the store set: the store's top code first, then 99 codes on the city prefixes."""
    store_set = STORE_SETS[store_set_name]
    rng = np.random.default_rng(CATALOG_SEED)
    pools: dict[str, PinPool] = {}
    for store in store_set.stores:
        if store.city in pools:
            continue
        prefixes = np.array(store.pin_prefixes)
        suffix_grid = np.arange(1, 1000)
        candidates = (prefixes[:, None] * 1000 + suffix_grid[None, :]).ravel()
        candidates = candidates[candidates != store.top_pin]
        prefix_share = np.where(candidates // 1000 == prefixes[0], 4.0, 1.0)
        others = rng.choice(candidates, size=PIN_LOCAL_CODES - 1, replace=False, p=prefix_share / prefix_share.sum())
        codes = np.concatenate([[store.top_pin], others]).astype(np.int64)
        pools[store.city] = PinPool(codes=codes, weights=zipf_weights(PIN_LOCAL_CODES, PIN_ZIPF_EXPONENT))
    return pools


@dataclass(frozen=True)
class PoolSpec:
    """How a product pool's base prices and popularity are drawn: lognormal(log median, sigma), Zipf offset."""

    n_skus: int
    price_median: float
    price_sigma: float
    zipf_offset: float


# Base-price medians sit a little above the measured sale-price medians (FMCG 60, GM 75, apparel 349) because
# promotions (29% of rows, d ~ U(0.05, 0.30)), carry bags and free items pull the sale price down.
POOL_SPECS: tuple[PoolSpec, ...] = (
    PoolSpec(n_skus=3300, price_median=76.0, price_sigma=1.05, zipf_offset=20.0),
    PoolSpec(n_skus=1440, price_median=78.0, price_sigma=1.0, zipf_offset=50.0),
    PoolSpec(n_skus=750, price_median=370.0, price_sigma=0.7, zipf_offset=126.0),
    PoolSpec(n_skus=260, price_median=1100.0, price_sigma=0.85, zipf_offset=50.0),
    PoolSpec(n_skus=250, price_median=1400.0, price_sigma=0.85, zipf_offset=126.0),
)
CARRY_BAG_PRICES = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
CARRY_BAG_RANKS = (1, 2, 3, 4, 6, 9)
PRODUCE_PRICE_MEDIAN, PRODUCE_PRICE_SIGMA, N_PRODUCE = 40.0, 0.6, 40
BIG_TICKET_RANK_SHIFT = 1.0
SHORT_STYLE_SHARE = 0.09  # apparel codes on the 830 prefix: 12 digits instead of 13

_BRANDS = ("SUVARNA", "HARIVA", "NIRMALO", "TEJASVI", "KAVYANA", "SAMRUDH", "ANOKHA", "PRAKRITA", "MADHUVAN",
           "SHUBHRA", "VEDANTA FOODS", "GANGOTRI", "NILGIRA", "SURYODAY", "AMRUTHA", "KESARI", "HIMSHIKHA",
           "RAJBHOG", "ANNAPURNI", "DHANVI", "SOORAJ", "PARVATI", "KRISHIKA", "MEGHA", "SAROVAR", "TARANGA")
_GROCERY_ITEMS = ("TEA CTC", "COFFEE INSTANT", "BISC MARIE", "BISC CREAM", "NDL MASALA", "TOMATO KETCHUP",
                  "SOAP NEEM", "SHMP HERBAL", "DT POW LEMON", "BASMATI RICE", "ATTA CHAKKI", "SUNFLOWER OIL",
                  "SOYABEAN OIL", "HONEY PURE", "JAM MIXED FRUIT", "CORNFLAKES", "OATS INSTANT", "TOOTHPASTE MINT",
                  "FLR CLNR LAVENDER", "UTENSL BAR", "CHIPS SALTED", "CHOCO BAR", "SALT IODISED", "HALDI POWDER",
                  "CHILLI POWDER", "AGARBATTI SANDAL", "HAIR OIL COCONUT", "FACE WASH NEEM", "BREAD WHITE",
                  "GHEE PURE", "PICKLE MANGO", "PAPAD MOONG", "SOFT DRINK", "JUICE MANGO", "MILK TOAST", "RUSK",
                  "VERMICELLI", "POHA THICK", "COOKIES CHOCO", "WAFER ORANGE", "KHAKHRA", "BODY LOTION")
_GROCERY_VARIANTS = ("GOLD", "PREMIUM", "CLASSIC", "LITE", "SPECIAL", "REG", "ECO", "FAMILY", "ROYAL", "FRESH")
_PACKS = ("PP", "BT", "BX", "JR", "CT", "OP", "PB")
_SIZES = ("50g", "75g", "100g", "125g", "200g", "250g", "500g", "1kg", "2kg", "5Kg", "100ml", "200ml", "500ml",
          "1L", "2L", "4*75g", "3+1 150g")
_PRODUCE = ("TOMATO", "ONION", "POTATO", "SUGAR MEDIUM", "TUR DAL PREM", "LADYFINGER", "CABBAGE", "CAULIFLOWER",
            "CARROT", "GINGER", "GARLIC", "GREEN CHILLI", "LEMON", "CUCUMBER", "BRINJAL", "CAPSICUM GREEN",
            "BEETROOT", "BANANA ROBUSTA", "APPLE SHIMLA", "ORANGE", "PAPAYA", "WATERMELON", "MOONG DAL", "CHANA DAL",
            "MASOOR DAL", "RICE SONA MASOORI", "WHEAT SHARBATI", "JAGGERY", "PEANUTS", "BESAN", "RAVA", "MAIDA",
            "CORIANDER", "SPINACH", "METHI", "PUMPKIN", "BOTTLE GOURD", "BITTER GOURD", "SWEET POTATO", "RAW MANGO")
_CARRY_BAG_SIZES = ("20X25X208SWG NEW", "27X30X208SWG NEW", "20X25X168SWG NEW", "27X30X168SWG NEW",
                    "16X20X208SWG NEW", "16X20X168SWG NEW")
_GM_BRANDS = ("HOMELINE", "GHARSAAZ", "KITCHENIA", "SAFEPLAST", "DURAWARE", "RANGOLI", "PLAYKART", "LUMINA")
_GM_ITEMS = ("BUCKET", "MUG", "STORAGE CONTAINER", "WATER BOTTLE", "LUNCH BOX", "TOWEL RACK", "BROOM", "FLOOR DUSTER",
             "HANGER SET", "PLATE SET", "GLASS SET", "TIFFIN", "TORCH", "EXTENSION BOARD", "LED BULB", "TOY CAR",
             "CRICKET BAT", "NOTEBOOK", "PEN SET", "UMBRELLA", "DUSTBIN", "SOAP CASE")
_GM_SPECS = ("16L", "1L", "SET OF 6", "PRINTED", "BLUE", "PK-2", "9W", "LARGE", "SMALL", "DELUXE", "3 PARTITION")
_COOKWARE_ITEMS = ("PRESSURE COOKER", "KADAI", "TAWA", "FRY PAN", "SAUCE PAN", "CASSEROLE SET", "MIXER GRINDER",
                   "INDUCTION COOKTOP", "DINNER SET", "KNIFE SET", "GAS STOVE 2B", "CHAPATI MAKER")
_COOKWARE_SPECS = ("3L", "5L", "NON-STICK", "SS", "HARD ANODISED", "24CM", "28CM", "750W", "32 PCS", "TRI-PLY")
_STYLE_PREFIXES = ("DLJ", "DJT", "DLT", "SHY", "PBJK", "LNG", "KHSH", "NYSH", "DJWS", "MTSH", "WKRT", "KDFR")
_LETTERS = np.array(list("ABCDEFGHIKLMNOPRSTUW"))
_APPAREL_SIZES = ("S", "M", "L", "XL", "XXL", "28", "30", "32", "34", "36", "38", "40", "42", "5-6", "9-10", "NA")
_COLOURS = ("NAVY", "BLACK", "WHITE", "BLUE", "RED", "GREY", "INDIGO", "MAROON", "OLIVE", "PINK", "ECRU MEL",
            "DARK GREY", "STONE", "RUST", "TEAL", "MUSTARD")
_HOME_ITEMS = ("BEDSHEET DBL", "BEDSHEET SGL", "BLANKET MINK", "COMFORTER", "CURTAIN DOOR", "CURTAIN WINDOW",
               "BATH TOWEL", "CUSHION COVER SET", "DOORMAT", "QUILT", "DIWAN SET", "TABLE COVER")
_HOME_SIZES = ("90X100", "60X90", "7FT", "5FT", "70CM X 1.4 M", "KING", "QUEEN", "NA")


@dataclass(frozen=True)
class ProductCatalog:
    """All SKUs; per-SKU arrays are shape [K], ``pool_members[p]`` indexes the SKUs of pool p.

    ``pool_members[p]`` is sorted by popularity rank; ``pool_popularity[p]`` holds the matching Zipf-Mandelbrot
    weights (sum 1).
    """

    codes: np.ndarray
    descriptions: np.ndarray
    base_prices: np.ndarray
    family: np.ndarray
    pool_members: tuple[np.ndarray, ...]
    pool_popularity: tuple[np.ndarray, ...]


def _pick(rng: np.random.Generator, words: tuple[str, ...], size: int) -> np.ndarray:
    """``size`` words drawn uniformly from ``words``, as an object array."""
    return np.asarray(words, dtype=object)[rng.integers(0, len(words), size)]


def _join(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise string concatenation of object arrays and constants."""
    joined = np.asarray(parts[0], dtype=object)
    for part in parts[1:]:
        joined = joined + np.asarray(part, dtype=object)
    return joined


def _letters(rng: np.random.Generator, size: int, length: int) -> np.ndarray:
    """``size`` random upper-case codes of ``length`` letters."""
    chars = _LETTERS[rng.integers(0, len(_LETTERS), (size, length))]
    return np.array(["".join(row) for row in chars], dtype=object)


def _round_price(prices: np.ndarray, *, tag_price: bool) -> np.ndarray:
    """Whole rupees (at least 1); with ``tag_price`` prices >= 100 end in 9 (199, 349, 599) like apparel tags."""
    rounded = np.maximum(np.rint(prices), 1.0)
    if tag_price:
        tagged = np.round(prices / 10.0) * 10.0 - 1.0
        rounded = np.where(prices >= 100.0, tagged, rounded)
    return rounded


def _unique_codes(rng: np.random.Generator, prefix_counts: dict[int, int], n_digits_suffix: int) -> np.ndarray:
    """Distinct integers ``prefix * 10**n_digits_suffix + suffix``, ``count`` of them for each prefix."""
    span = 10**n_digits_suffix
    blocks = [prefix * span + rng.choice(span, size=count, replace=False) for prefix, count in prefix_counts.items()]
    return rng.permutation(np.concatenate(blocks).astype(np.int64))


def _fmcg_descriptions(rng: np.random.Generator, size: int) -> np.ndarray:
    """'BRAND ITEM VARIANT PACK SIZE', e.g. 'SUVARNA TEA CTC GOLD PP 500g'."""
    variant = _pick(rng, _GROCERY_VARIANTS, size)
    variant = np.where(rng.random(size) < 0.5, variant + " ", "")
    return _join(_pick(rng, _BRANDS, size), " ", _pick(rng, _GROCERY_ITEMS, size), " ", variant,
                 _pick(rng, _PACKS, size), " ", _pick(rng, _SIZES, size))


def _apparel_descriptions(rng: np.random.Generator, size: int) -> np.ndarray:
    """'STYLE-CODE, SIZE, COLOUR', e.g. 'DJT-0160-KR-BSF, XL, NAVY' (commas force CSV quoting)."""
    numbers = np.char.zfill(rng.integers(10, 5000, size).astype(str), 4).astype(object)
    style = _join(_pick(rng, _STYLE_PREFIXES, size), "-", numbers, "-", _letters(rng, size, 2), "-",
                  _letters(rng, size, 3))
    return _join(style, ", ", _pick(rng, _APPAREL_SIZES, size), ", ", _pick(rng, _COLOURS, size))


def _home_textile_descriptions(rng: np.random.Generator, size: int) -> np.ndarray:
    """'ITEM-NNNN, SIZE, COLOUR', e.g. 'BEDSHEET DBL-0231, 90X100, TEAL'."""
    numbers = np.char.zfill(rng.integers(10, 5000, size).astype(str), 4).astype(object)
    return _join(_pick(rng, _HOME_ITEMS, size), "-", numbers, ", ", _pick(rng, _HOME_SIZES, size), ", ",
                 _pick(rng, _COLOURS, size))


def _rank_with_tail(rng: np.random.Generator, members: np.ndarray, big_ticket: np.ndarray) -> np.ndarray:
    """Members in a random popularity order, with the big-ticket ones pushed towards the tail.

    Sort key: u ~ U(0, 1), plus BIG_TICKET_RANK_SHIFT for big-ticket SKUs, so that cookware and home textiles stay
    a small share of background rows (the real GM p95 is 437, the apparel p95 1,116).
    """
    keys = rng.random(len(members)) + BIG_TICKET_RANK_SHIFT * np.isin(members, big_ticket)
    return members[np.argsort(keys, kind="stable")]


@lru_cache(maxsize=None)
def product_catalog(store_set_name: str) -> ProductCatalog:
    """Build the ~6,000-SKU catalogue (deterministic; the carry-bag prefix follows the store set).

    Base price: lognormal(ln median, sigma) per pool (POOL_SPECS); FMCG also holds 6 carry bags (price 2-7, ranks
    1-9) and 40 loose produce lines (lognormal median 40, sigma 0.6). Codes: FMCG 9 digits 300xxxxxx/108xxxxxx,
    GM and cookware 10 digits 1000xxxxxx, apparel and home textiles 13 digits (10-digit style + 3-digit size)
    or 12 digits (830xxxxxx + size).
    """
    store_set = STORE_SETS[store_set_name]
    rng = np.random.default_rng(CATALOG_SEED)
    specs = POOL_SPECS
    n_gm = specs[GM].n_skus + specs[COOKWARE].n_skus
    n_apparel = specs[APPAREL].n_skus + specs[HOME_TEXTILES].n_skus

    n_fmcg = specs[FMCG].n_skus
    fmcg_codes = _unique_codes(rng, {300: n_fmcg // 2, 108: n_fmcg - n_fmcg // 2}, 6)
    gm_codes = _unique_codes(rng, {1000: n_gm}, 6)
    n_short_style = int(round(SHORT_STYLE_SHARE * n_apparel))
    style_codes = _unique_codes(rng, {1000: n_apparel - n_short_style, 830: n_short_style}, 6)
    apparel_codes = style_codes * 1000 + rng.integers(1, 15, n_apparel)

    fmcg_prices = rng.lognormal(np.log(specs[FMCG].price_median), specs[FMCG].price_sigma, n_fmcg)
    fmcg_descriptions = _fmcg_descriptions(rng, n_fmcg)
    n_bags = len(CARRY_BAG_PRICES)
    produce_ranks = np.sort(rng.choice(np.arange(10, 300), N_PRODUCE, replace=False))
    reserved_ranks = np.concatenate([np.array(CARRY_BAG_RANKS) - 1, produce_ranks])
    fmcg_rank = np.concatenate([reserved_ranks,
                                rng.permutation(np.setdiff1d(np.arange(n_fmcg), reserved_ranks))])
    fmcg_prices[:n_bags] = CARRY_BAG_PRICES
    fmcg_descriptions[:n_bags] = np.array([store_set.carry_bag_prefix + size for size in _CARRY_BAG_SIZES],
                                          dtype=object)
    produce = slice(n_bags, n_bags + N_PRODUCE)
    fmcg_prices[produce] = rng.lognormal(np.log(PRODUCE_PRICE_MEDIAN), PRODUCE_PRICE_SIGMA, N_PRODUCE)
    fmcg_descriptions[produce] = np.array([name + " LOOSE" for name in _PRODUCE], dtype=object)
    fmcg_prices[n_bags:] = _round_price(fmcg_prices[n_bags:], tag_price=False)

    gm_sizes = (specs[GM].n_skus, specs[COOKWARE].n_skus)
    gm_prices = np.concatenate([
        rng.lognormal(np.log(specs[GM].price_median), specs[GM].price_sigma, gm_sizes[0]),
        rng.lognormal(np.log(specs[COOKWARE].price_median), specs[COOKWARE].price_sigma, gm_sizes[1]),
    ])
    gm_prices = _round_price(gm_prices, tag_price=True)
    gm_descriptions = np.concatenate([
        _join(_pick(rng, _GM_BRANDS, gm_sizes[0]), " ", _pick(rng, _GM_ITEMS, gm_sizes[0]), " ",
              _pick(rng, _GM_SPECS, gm_sizes[0])),
        _join(_pick(rng, _GM_BRANDS, gm_sizes[1]), " ", _pick(rng, _COOKWARE_ITEMS, gm_sizes[1]), " ",
              _pick(rng, _COOKWARE_SPECS, gm_sizes[1])),
    ])

    apparel_sizes = (specs[APPAREL].n_skus, specs[HOME_TEXTILES].n_skus)
    apparel_prices = np.concatenate([
        rng.lognormal(np.log(specs[APPAREL].price_median), specs[APPAREL].price_sigma, apparel_sizes[0]),
        rng.lognormal(np.log(specs[HOME_TEXTILES].price_median), specs[HOME_TEXTILES].price_sigma, apparel_sizes[1]),
    ])
    apparel_prices = _round_price(apparel_prices, tag_price=True)
    apparel_descriptions = np.concatenate([_apparel_descriptions(rng, apparel_sizes[0]),
                                           _home_textile_descriptions(rng, apparel_sizes[1])])

    codes = np.concatenate([fmcg_codes, gm_codes, apparel_codes])
    descriptions = np.concatenate([fmcg_descriptions, gm_descriptions, apparel_descriptions])
    base_prices = np.concatenate([fmcg_prices, gm_prices, apparel_prices])
    family = np.repeat([FMCG, GM, APPAREL], [n_fmcg, n_gm, n_apparel])

    fmcg_ids = np.arange(n_fmcg)
    gm_ids = n_fmcg + np.arange(n_gm)
    apparel_ids = n_fmcg + n_gm + np.arange(n_apparel)
    sub_pools = {COOKWARE: (GM, gm_ids[gm_sizes[0]:]), HOME_TEXTILES: (APPAREL, apparel_ids[apparel_sizes[0]:])}
    family_ranked = (fmcg_ids[np.argsort(fmcg_rank, kind="stable")],
                     _rank_with_tail(rng, gm_ids, sub_pools[COOKWARE][1]),
                     _rank_with_tail(rng, apparel_ids, sub_pools[HOME_TEXTILES][1]))
    pool_members = list(family_ranked)
    for parent, subset in sub_pools.values():
        parent_ranked = family_ranked[parent]
        pool_members.append(parent_ranked[np.isin(parent_ranked, subset)])
    pool_popularity = [zipf_weights(len(members), ZIPF_EXPONENT, spec.zipf_offset)
                       for members, spec in zip(pool_members, specs)]
    logger.debug("built product catalogue: %d SKUs", len(codes))
    return ProductCatalog(codes=codes, descriptions=descriptions, base_prices=base_prices, family=family,
                          pool_members=tuple(pool_members), pool_popularity=tuple(pool_popularity))


ZONES = ("AZ", "IZ", "SZ", "EZ", "IS", "IN")
_PROMO_CATEGORIES = (
    ("STAPLES", "FOOD", "ASSORTED", "BEVERAGES", "HOME CARE", "PERSONAL CARE", "SNACKS", "SUPER SAVING CARD"),
    ("HOMEWARE", "PLASTICS", "COOKWARE", "GM ASSORTED", "TOYS", "STATIONERY", "LUGGAGE"),
    ("LADIES JEANS", "MENS SHIRTS", "KIDS WEAR", "FOOTWEAR", "HOME TEXTILES", "INNERWEAR", "FASHION EXC"),
)
_WED_FOOD_SUFFIXES = ("EXC", "EXC PF", "EXC STPL", "STAPLES")
PROMO_CODES_PER_FAMILY = (1200, 620, 380)
PROMO_ZIPF_OFFSETS = (1.0, 1.2, 1.4)  # the top code takes ~10% of its family's promo rows (real: 8.7%)
WED_FOOD_SHARE = 0.08


@dataclass(frozen=True)
class PromoCatalog:
    """Promotion codes (10-digit zero-padded strings) and descriptions, shape [P] each.

    ``family_members[f]`` lists the codes offered on family f by popularity rank (Zipf-Mandelbrot weights in
    ``family_popularity[f]``); ``wed_food_members`` are the FMCG codes whose offer is 'n% DISC WED FOOD'.
    """

    codes: np.ndarray
    descriptions: np.ndarray
    family_members: tuple[np.ndarray, ...]
    family_popularity: tuple[np.ndarray, ...]
    wed_food_members: np.ndarray
    wed_food_popularity: np.ndarray


def _offer_texts(rng: np.random.Generator, size: int) -> np.ndarray:
    """Offer part of a promotion: 'n% OFF', 'FLAT n', 'B2G1' or 'SHOP n & GET m RS OFF'."""
    percent = rng.choice([5, 6, 7, 10, 12, 15, 20, 25, 30], size).astype(str).astype(object)
    flat = rng.choice([49, 99, 100, 150, 199, 250, 399, 500], size).astype(str).astype(object)
    shop = rng.choice([499, 750, 999, 1500, 2000, 3000], size)
    get = (shop // 5).astype(str).astype(object)
    choices = np.stack([
        _join(percent, "% OFF"),
        _join("FLAT ", flat),
        np.full(size, "B2G1", dtype=object),
        _join("SHOP ", shop.astype(str).astype(object), " & GET ", get, " RS OFF"),
    ])
    kind = rng.choice(4, size, p=[0.45, 0.25, 0.1, 0.2])
    return choices[kind, np.arange(size)]


@lru_cache(maxsize=None)
def promo_catalog() -> PromoCatalog:
    """Build the ~2,200 promotion codes: 'ZONE OFFER CATEGORY'; 8% of FMCG codes are 'ZONE n% DISC WED FOOD EXC'."""
    rng = np.random.default_rng(CATALOG_SEED + 1)
    n_total = sum(PROMO_CODES_PER_FAMILY)
    numbers = 900_000 + rng.choice(500_000, size=n_total, replace=False)
    codes = np.char.zfill(numbers.astype(str), 10).astype(object)
    descriptions = []
    family_members = []
    family_popularity = []
    wed_ids = np.empty(0, dtype=np.int64)
    start = 0
    for family, n_codes in enumerate(PROMO_CODES_PER_FAMILY):
        zones = _pick(rng, ZONES, n_codes)
        categories = _pick(rng, _PROMO_CATEGORIES[family], n_codes)
        texts = _join(zones, " ", _offer_texts(rng, n_codes), " ", categories)
        if family == FMCG:
            n_wed = int(round(WED_FOOD_SHARE * n_codes))
            wed_percent = rng.choice([5, 6, 8, 10], n_wed).astype(str).astype(object)
            wed_suffix = _pick(rng, _WED_FOOD_SUFFIXES, n_wed)
            texts[-n_wed:] = _join(zones[-n_wed:], " ", wed_percent, "% DISC WED FOOD ", wed_suffix)
            wed_ids = start + np.arange(n_codes - n_wed, n_codes)
        descriptions.append(texts)
        members = start + rng.permutation(n_codes)
        family_members.append(members)
        family_popularity.append(zipf_weights(n_codes, ZIPF_EXPONENT, PROMO_ZIPF_OFFSETS[family]))
        start += n_codes
    wed_members = rng.permutation(wed_ids)
    return PromoCatalog(codes=codes, descriptions=np.concatenate(descriptions),
                        family_members=tuple(family_members), family_popularity=tuple(family_popularity),
                        wed_food_members=wed_members,
                        wed_food_popularity=zipf_weights(len(wed_members), ZIPF_EXPONENT, 1.0))
