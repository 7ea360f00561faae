/* lean_data._binance: a kline or an aggTrade of a Binance frame, read in one C pass.
 *
 * Nearly every frame of a busy Binance stream is one of two shapes: a combined-stream
 * envelope around a ``kline`` (closed, or an in-progress update) or an ``aggTrade``. lean_data.wire.binance decodes
 * frames with msgspec's closed schemas (then builds the bar or trade), and anything those
 * refuse with the checked dict path, which owns every error message. This module reads the
 * common shapes in one pass over the text and builds the item directly; it is a shortcut,
 * never a judge:
 *
 *   - it accepts a strict subset of what the typed schemas accept: no whitespace between
 *     tokens, strings of printable ASCII without escapes, integers of at most 18 digits,
 *     prices and sizes of the form -?[0-9]+(.[0-9]+)? (at most 63 characters), every key
 *     known to the schema and none twice;
 *   - for what it accepts it gives the item the typed path gives (the same fields, the same
 *     float() reading of the decimal strings, the same symbol lookup);
 *   - for anything else (another event, a reply, a frame with an unusual but valid
 *     spelling, a malformed frame) it returns None, and the caller decodes the frame the
 *     usual way, which accepts it or says why not.
 *
 * tests/test_wire_binance_fast.py checks the first two points on the real captured frames
 * and on mutations of them. Built with the compiled package (lean_data/compiled.py,
 * C_MODULES); without it, every frame takes the usual path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ values and fields */

/* K_DEC: a string the item reads as a float (a price or a size): the reader notes, while it
 * scans it, whether it is a plain decimal and its digits as an integer (see decimal). */
enum { K_STR = 1, K_DEC, K_INT, K_BOOL, K_OBJ };

/* A value's number, for a K_DEC string. */
enum { NUM_NONE = 0, NUM_EXACT, NUM_PLAIN };

typedef struct {
    const char *text;       /* K_STR, K_DEC: the characters between the quotes; K_INT: its
                             * text, sign included (integer_text) */
    Py_ssize_t len;
    long long integer;      /* K_INT */
    uint64_t mantissa;      /* K_DEC: its digits, without the point (NUM_EXACT) */
    int scale;              /* K_DEC: digits after the point (NUM_EXACT) */
    int boolean;            /* K_BOOL */
    signed char number;     /* K_DEC: NUM_NONE: not of the form -?[0-9]+(.[0-9]+)?;
                             * NUM_EXACT: mantissa / 10^scale is float(text) (see decimal);
                             * NUM_PLAIN: of that form, for CPython's parser */
    signed char negative;   /* K_DEC, K_INT: a leading '-' */
} Value;

typedef struct {
    const char *name;
    int kind;          /* the kind the schema declares (K_DEC: a K_STR the item reads as a float) */
} Field;

#define BIT(i) (1u << (i))

/* The envelope's data object: the union of a kline event's keys and an aggTrade's. */
enum { D_E, D_EVENT_TIME, D_S, D_K, D_A, D_P, D_Q, D_F, D_L, D_T, D_M, D_BIG_M, D_COUNT };
static const Field DATA_FIELDS[D_COUNT] = {
    {"e", K_STR}, {"E", K_INT}, {"s", K_STR}, {"k", K_OBJ}, {"a", K_INT}, {"p", K_DEC},
    {"q", K_DEC}, {"f", K_INT}, {"l", K_INT}, {"T", K_INT}, {"m", K_BOOL}, {"M", K_BOOL},
};

/* A kline's k object (lean_data.wire.binance_typed.KlineBody). */
enum {
    B_T, B_BIG_T, B_S, B_I, B_F, B_BIG_L, B_O, B_C, B_H, B_L, B_V, B_N, B_X, B_Q, B_BIG_V,
    B_BIG_Q, B_BIG_B, B_COUNT
};
static const Field BODY_FIELDS[B_COUNT] = {
    {"t", K_INT}, {"T", K_INT}, {"s", K_STR}, {"i", K_STR}, {"f", K_INT}, {"L", K_INT},
    {"o", K_DEC}, {"c", K_DEC}, {"h", K_DEC}, {"l", K_DEC}, {"v", K_DEC}, {"n", K_INT},
    {"x", K_BOOL}, {"q", K_STR}, {"V", K_STR}, {"Q", K_STR}, {"B", K_STR},
};

/* Field index by the key's one character (-1: not a key of the schema, every byte past
 * ASCII included), and the field's kind; filled from the tables above when the module
 * loads. */
static signed char DATA_LOOKUP[256];
static signed char BODY_LOOKUP[256];
static unsigned char DATA_KINDS[D_COUNT];
static unsigned char BODY_KINDS[B_COUNT];

/* 1: a character a string may hold as it is (printable ASCII but '"' and '\\'). */
static unsigned char PLAIN[256];

static void
fill_lookup(signed char *lookup, unsigned char *kinds, const Field *fields, int count)
{
    memset(lookup, -1, 256);
    for (int i = 0; i < count; i++) {
        lookup[(unsigned char)fields[i].name[0]] = (signed char)i;
        kinds[i] = (unsigned char)fields[i].kind;
    }
}

/* ------------------------------------------------------------------ the reader */

/* The reader needs the byte after the frame's last to be NUL (a str's and a bytes' buffer
 * always ends so; decoder_item checks it): NUL is none of the characters a scan looks for,
 * so a scan stops at it without comparing its pointer with the end, which it does only
 * before reading more than one byte at once. On little-endian machines it reads strings
 * and integers eight bytes at a time (WORDWISE); elsewhere, or with LEAN_DATA_BYTEWISE
 * defined, a byte at a time: the same answers. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ \
    && !defined(LEAN_DATA_BYTEWISE)
#define WORDWISE 1
#else
#define WORDWISE 0
#endif

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline int
is_digit(char ch)
{
    return (unsigned)(unsigned char)ch - '0' < 10u;
}

#if WORDWISE
static inline uint64_t
load8(const char *p)
{
    uint64_t word;
    memcpy(&word, p, 8);
    return word;
}

/* The high bit of each byte of ``word`` that a string may not hold as it is ('"', '\\',
 * below 0x20, 0x7f and above); a borrow can mark a byte above a marked one too, never
 * one below the first, so the lowest mark is the first such byte. */
static inline uint64_t
special_bytes(uint64_t word)
{
    uint64_t quote = word ^ (ONES * '"');
    uint64_t slash = word ^ (ONES * '\\');
    uint64_t marks = ((quote - ONES) & ~quote) | ((slash - ONES) & ~slash);
    marks |= (word - ONES * 0x20) & ~word;       /* below 0x20 */
    marks |= ((word & ~HIGHS) + ONES) | word;    /* 0x7f and above */
    return marks & HIGHS;
}

/* The value of eight digits 0-9 (a byte each, the first the most significant). */
static inline uint64_t
eight_value(uint64_t word)
{
    const uint64_t mask = 0x000000FF000000FFULL;
    const uint64_t mul1 = 0x000F424000000064ULL; /* 100 + (1000000 << 32) */
    const uint64_t mul2 = 0x0000271000000001ULL; /* 1 + (10000 << 32) */
    word = (word * 10) + (word >> 8);
    return ((((word & mask) * mul1) + (((word >> 16) & mask) * mul2)) >> 32) & 0xFFFFFFFFULL;
}
#endif

/* The end of the run of ASCII digits at ``p``, with ``*number`` times ten per digit plus
 * the digit (wrapping past 19 digits: the caller counts them). */
static inline const char *
digit_run(const char *p, const char *end, uint64_t *number)
{
#if WORDWISE
    static const uint64_t powers[9] = {
        1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
    };
    while (end - p >= 8) {
        /* a byte's digit in its low nibble; a mark in the high nibble of every byte that
         * is not a digit (its high nibble set, or its low one past 9), and a carry only
         * from a marked byte to the one above it: the lowest mark is the first non-digit */
        uint64_t word = load8(p) ^ (ONES * '0');
        uint64_t marks = ((word + ONES * 6) | word) & 0xF0F0F0F0F0F0F0F0ULL;
        if (marks == 0) {
            *number = *number * 100000000u + eight_value(word);
            p += 8;
            continue;
        }
        int count = __builtin_ctzll(marks) >> 3;
        if (count > 0) { /* the count digits, moved up to the word's top as its last */
            *number = *number * powers[count] + eight_value(word << (8 * (8 - count)));
            p += count;
        }
        return p;
    }
#else
    (void)end;
#endif
    while (is_digit(*p)) {
        *number = *number * 10 + (uint64_t)(*p - '0');
        p++;
    }
    return p;
}

/* The closing quote of a string whose characters start at ``p`` (printable ASCII, no
 * escape); NULL when another character comes first. */
static inline const char *
string_end(const char *p, const char *end)
{
#if WORDWISE
    while (end - p >= 8) {
        uint64_t special = special_bytes(load8(p));
        if (special != 0) {
            p += __builtin_ctzll(special) >> 3;
            return *p == '"' ? p : NULL;
        }
        p += 8;
    }
#else
    (void)end;
#endif
    while (PLAIN[(unsigned char)*p]) {
        p++;
    }
    return *p == '"' ? p : NULL;
}

/* The rest of a string value whose text starts at ``value->text``, from ``p`` within it:
 * its length set; the character after its closing quote, or NULL. */
static inline const char *
string_rest(const char *p, const char *end, Value *value)
{
    p = string_end(p, end);
    if (p == NULL) {
        return NULL;
    }
    value->len = p - value->text;
    return p + 1;
}

/* A string value at ``p`` (its opening quote); the character after it, or NULL. */
static inline const char *
read_string(const char *p, const char *end, Value *value)
{
    if (*p != '"') {
        return NULL;
    }
    value->text = ++p;
    return string_rest(p, end, value);
}

/* A string value that is a price or a size: read_string's, noting whether it is a plain
 * decimal -?[0-9]+(.[0-9]+)? and, when its digits (at most 19, so no overflow) are at most
 * 2^53 with at most 22 after the point, their integer and the point's place. */
static inline const char *
read_decimal(const char *p, const char *end, Value *value)
{
    if (*p != '"') {
        return NULL;
    }
    value->text = ++p;
    int negative = *p == '-';
    p += negative;
    const char *digits = p;
    uint64_t mantissa = 0;
    p = digit_run(p, end, &mantissa);
    Py_ssize_t whole = p - digits, scale = 0;
    int plain = whole > 0;
    if (plain && *p == '.') {
        const char *fraction = ++p;
        p = digit_run(p, end, &mantissa);
        scale = p - fraction;
        plain = scale > 0;
    }
    if (plain && *p == '"') {
        int exact = whole + scale <= 19 && mantissa <= (1ULL << 53) && scale <= 22;
        value->number = exact ? NUM_EXACT : NUM_PLAIN;
        value->mantissa = mantissa;
        value->scale = (int)scale;
        value->negative = (signed char)negative;
        value->len = p - value->text;
        return p + 1;
    }
    /* not a plain decimal: the rest of an ordinary string (what came before it, '-',
     * digits and a point, is) */
    value->number = NUM_NONE;
    return string_rest(p, end, value);
}

/* A JSON integer of at most 18 digits, followed by ',' or '}' (a fraction or an exponent:
 * not this reader's); the character after it, or NULL. */
static inline const char *
read_integer(const char *p, const char *end, Value *value)
{
    int negative = *p == '-';
    value->text = p;
    p += negative;
    const char *start = p;
    uint64_t number = 0; /* wraps past 19 digits: those are refused below */
    p = digit_run(p, end, &number);
    Py_ssize_t digits = p - start;
    if (digits == 0 || digits > 18 || (digits > 1 && *start == '0')) {
        return NULL;
    }
    if (*p != ',' && *p != '}') {
        return NULL;
    }
    value->len = p - value->text;
    value->negative = (signed char)negative;
    value->integer = negative ? -(long long)number : (long long)number;
    return p;
}

/* An object whose keys are all one of the ``lookup`` table's, none twice (``seen``: a bit
 * a field), each value of its declared kind; the character after it, or NULL. The one
 * nested object (the data object's ``k``) is read into ``nested`` with BODY_LOOKUP. */
static const char *
read_object(const char *p, const char *end, const signed char *lookup, const unsigned char *kinds,
            Value *values, uint32_t *seen, Value *nested, uint32_t *nested_seen)
{
    if (*p != '{') {
        return NULL;
    }
    p++;
    if (*p == '}') {
        return p + 1;
    }
    for (;;) {
        /* every key of these schemas is one character: "K": (each test reads a byte only
         * when the one before it is not the final NUL) */
        int index;
        if (p[0] != '"' || (index = lookup[(unsigned char)p[1]]) < 0 || p[2] != '"'
            || p[3] != ':') {
            return NULL; /* a key the schema does not know, or not this spelling */
        }
        if (*seen & BIT(index)) {
            return NULL; /* a key seen before */
        }
        *seen |= BIT(index);
        p += 4;
        Value *value = &values[index];
        switch (kinds[index]) {
        case K_STR:
            p = read_string(p, end, value);
            break;
        case K_DEC:
            p = read_decimal(p, end, value);
            break;
        case K_INT:
            p = read_integer(p, end, value);
            break;
        case K_BOOL:
            if (p[0] == 't' && p[1] == 'r' && p[2] == 'u' && p[3] == 'e') {
                value->boolean = 1;
                p += 4;
            }
            else if (p[0] == 'f' && p[1] == 'a' && p[2] == 'l' && p[3] == 's' && p[4] == 'e') {
                value->boolean = 0;
                p += 5;
            }
            else {
                p = NULL;
            }
            break;
        case K_OBJ:
            p = nested == NULL ? NULL
                               : read_object(p, end, BODY_LOOKUP, BODY_KINDS, nested,
                                             nested_seen, NULL, NULL);
            break;
        default:
            p = NULL;
        }
        if (p == NULL) {
            return NULL;
        }
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}') {
            return p + 1;
        }
        return NULL;
    }
}

/* The envelope {"stream": str, "data": {...}} (either order) and nothing after it; data's
 * values go to ``data`` (``data_seen``: which), k's to ``body`` (``body_seen``). */
static int
read_frame(const char *text, Py_ssize_t len, Value *data, uint32_t *data_seen, Value *body,
           uint32_t *body_seen, Value *stream)
{
    const char *p = text, *end = text + len;
    int have_stream = 0, have_data = 0;
    if (*p != '{') {
        return 0;
    }
    p++;
    for (;;) {
#if WORDWISE /* the same test as memcmp's, without its call */
        if (end - p >= 10 && load8(p) == load8("\"stream\"") && p[8] == ':' && p[9] == '"') {
#else
        if (end - p >= 10 && memcmp(p, "\"stream\":\"", 10) == 0) {
#endif
            if (have_stream) {
                return 0;
            }
            p = read_string(p + 9, end, stream);
            have_stream = 1;
        }
        else if (end - p >= 7 && memcmp(p, "\"data\":", 7) == 0) {
            if (have_data) {
                return 0;
            }
            p = read_object(p + 7, end, DATA_LOOKUP, DATA_KINDS, data, data_seen, body,
                            body_seen);
            have_data = 1;
        }
        else {
            return 0;
        }
        if (p == NULL) {
            return 0;
        }
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}') {
            p++;
            break;
        }
        return 0;
    }
    return have_stream && have_data && p == end;
}

/* ------------------------------------------------------------------ building the item */

/* float(text) for a K_DEC string: a plain decimal -?[0-9]+(.[0-9]+)? of at most 63
 * characters (read_decimal saw which). */
static int
decimal(const Value *value, double *out)
{
    char buffer[64];
    Py_ssize_t len = value->len;
    if (value->number == NUM_NONE || len > 63) {
        return 0;
    }
    /* Clinger's fast path: digits m <= 2^53 are an exact double, 10^k (k <= 22) is exact,
     * and IEEE division rounds m / 10^k correctly: the double nearest the decimal value,
     * which is what float() returns. CPython's own parser (below, for everything else)
     * costs several times more per call. */
    static const double powers[23] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
        1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    };
    if (value->number == NUM_EXACT) {
        double number = (double)value->mantissa / powers[value->scale];
        *out = value->negative ? -number : number;
        return 1;
    }
    memcpy(buffer, value->text, (size_t)len);
    buffer[len] = '\0';
    char *stop = NULL;
    double parsed = PyOS_string_to_double(buffer, &stop, NULL);
    if (parsed == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (stop != buffer + len) {
        return 0;
    }
    *out = parsed;
    return 1;
}

/* A short text of the frames (a venue symbol, an interval) and the str made for it once:
 * the next frame with the same text reuses that str, with its hash computed, instead of
 * making and hashing a new one for a dict lookup. */
#define TEXTS 256
#define TEXT_MAX 23
typedef struct {
    unsigned char len; /* 0: empty slot */
    char text[TEXT_MAX];
    PyObject *str;
} Text;

typedef struct {
    PyObject_HEAD
    PyObject *canonical;   /* venue symbol -> canonical symbol, when the mapping has none */
    PyObject *intervals;   /* dict: kline interval ("1m") -> Resolution */
    PyObject *build_bar;   /* TradeBar's fields in order -> TradeBar */
    PyObject *build_tick;  /* Tick's fields in order -> Tick */
    PyObject *trade;       /* TickType.TRADE */
    PyObject *zero;        /* 0.0, the trade's bid and ask fields */
    PyObject *empty;       /* "", its exchange, and its condition when the buyer took */
    PyObject *buyer_maker; /* "buyer_maker", its condition when the buyer made the market */
    Text texts[TEXTS];     /* venue symbols and intervals seen, as str (see text_of) */
} DecoderObject;

static PyTypeObject DecoderType;

/* str(text) as a new reference: the remembered one when this text was seen before (a
 * table of TEXTS slots by the text's hash; a text too long, or a full run of slots, is
 * made afresh each time). */
static PyObject *
text_of(DecoderObject *self, const char *text, Py_ssize_t len)
{
    if (len < 1 || len > TEXT_MAX) {
        return PyUnicode_FromStringAndSize(text, len);
    }
    unsigned int hash;
#if WORDWISE
    if (len >= 4) { /* the first and last four or eight bytes (overlapping), mixed */
        uint64_t first, last;
        if (len >= 8) {
            first = load8(text);
            last = load8(text + len - 8);
        }
        else {
            uint32_t head, tail;
            memcpy(&head, text, 4);
            memcpy(&tail, text + len - 4, 4);
            first = head;
            last = tail;
        }
        uint64_t mixed = (first * 0x9E3779B97F4A7C15ULL ^ last) * 0x9E3779B97F4A7C15ULL;
        hash = (unsigned int)(mixed >> 32) ^ (unsigned int)len;
    }
    else
#endif
    {
        hash = 2166136261u; /* FNV-1a */
        for (Py_ssize_t i = 0; i < len; i++) {
            hash = (hash ^ (unsigned char)text[i]) * 16777619u;
        }
    }
    for (int probe = 0; probe < 8; probe++) {
        Text *slot = &self->texts[(hash + (unsigned int)probe) % TEXTS];
        if (slot->len == len && memcmp(slot->text, text, (size_t)len) == 0) {
            Py_INCREF(slot->str);
            return slot->str;
        }
        if (slot->len == 0) {
            PyObject *str = PyUnicode_FromStringAndSize(text, len);
            if (str == NULL) {
                return NULL;
            }
            if (PyObject_Hash(str) == -1) { /* a str's hash never fails; computed once */
                Py_DECREF(str);
                return NULL;
            }
            Py_INCREF(str);
            slot->str = str;
            memcpy(slot->text, text, (size_t)len);
            slot->len = (unsigned char)len;
            return str;
        }
    }
    return PyUnicode_FromStringAndSize(text, len);
}

/* The canonical symbol of the venue's ``text``: symbols[venue] when it maps it to
 * something, else canonical(venue). NULL with no error set: not this reader's. */
static PyObject *
symbol_of(DecoderObject *self, const Value *venue_value, PyObject *symbols)
{
    PyObject *venue = text_of(self, venue_value->text, venue_value->len);
    if (venue == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (symbols != Py_None) {
        PyObject *found = PyDict_GetItemWithError(symbols, venue); /* borrowed */
        if (found != NULL && found != Py_None) {
            Py_DECREF(venue);
            Py_INCREF(found);
            return found;
        }
        if (found == NULL && PyErr_Occurred()) {
            PyErr_Clear();
            Py_DECREF(venue);
            return NULL;
        }
    }
    PyObject *symbol = PyObject_CallOneArg(self->canonical, venue);
    Py_DECREF(venue);
    if (symbol == NULL) {
        PyErr_Clear(); /* the usual path raises it again, with its own message */
    }
    return symbol;
}

/* t (ms) * 1_000_000 as a Python int, when it fits an int64. */
static PyObject *
nanos(long long ms)
{
    const long long limit = INT64_MAX / 1000000;
    if (ms > limit || ms < -limit) {
        return NULL;
    }
    return PyLong_FromLongLong(ms * 1000000);
}

static PyObject *
build(PyObject *builder, PyObject **args, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        if (args[i] == NULL) {
            PyErr_Clear(); /* an argument's making failed; with none failed, none is set */
            return NULL;
        }
    }
    PyObject *item = PyObject_Vectorcall(builder, args, (size_t)count, NULL);
    if (item == NULL) {
        PyErr_Clear();
    }
    return item;
}

static PyObject *
kline(DecoderObject *self, const Value *data, uint32_t data_seen, const Value *body,
      uint32_t body_seen, PyObject *ts_recv, PyObject *symbols)
{
    if (data_seen & ~(BIT(D_E) | BIT(D_EVENT_TIME) | BIT(D_S) | BIT(D_K))) {
        return NULL; /* a kline event has e, E, s and k only */
    }
    if (!(data_seen & BIT(D_K))) {
        return NULL;
    }
    const uint32_t required = BIT(B_T) | BIT(B_S) | BIT(B_I) | BIT(B_O) | BIT(B_C) | BIT(B_H)
                              | BIT(B_L) | BIT(B_V) | BIT(B_X);
    if ((body_seen & required) != required) {
        return NULL;
    }
    double prices[5];
    const int price_fields[5] = {B_O, B_H, B_L, B_C, B_V};
    for (int i = 0; i < 5; i++) {
        if (!decimal(&body[price_fields[i]], &prices[i])) {
            return NULL;
        }
    }
    PyObject *interval = text_of(self, body[B_I].text, body[B_I].len);
    if (interval == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *resolution = PyDict_GetItemWithError(self->intervals, interval);
    Py_DECREF(interval);
    if (resolution == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_INCREF(resolution);
    PyObject *args[12] = {NULL};
    args[0] = symbol_of(self, &body[B_S], symbols);
    args[1] = nanos(body[B_T].integer);
    for (int i = 0; i < 5; i++) {
        args[2 + i] = PyFloat_FromDouble(prices[i]);
    }
    args[7] = resolution;
    args[8] = ts_recv;
    args[9] = body[B_X].boolean ? Py_True : Py_False;
    args[10] = PyLong_FromLong(0);
    args[11] = Py_False;
    PyObject *bar = build(self->build_bar, args, 12);
    for (int i = 0; i < 12; i++) {
        if (i != 8 && i != 9 && i != 11) { /* ts_recv, True, False: borrowed */
            Py_XDECREF(args[i]);
        }
    }
    return bar;
}

/* str(value) of a K_INT value: its text in the frame, which read_integer saw is what "%lld"
 * formats (no leading zero, no '+'), but for "-0", whose str is "0"; without
 * PyUnicode_FromFormat's format parsing (~1,400 instructions a trade id). */
static PyObject *
integer_text(const Value *value)
{
    const char *text = value->text;
    Py_ssize_t len = value->len;
    if (value->integer == 0) {
        text = "0";
        len = 1;
    }
    PyObject *str = PyUnicode_New(len, 127);
    if (str != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(str), text, (size_t)len);
    }
    return str;
}

static PyObject *
agg_trade(DecoderObject *self, const Value *data, uint32_t data_seen, PyObject *ts_recv,
          PyObject *symbols)
{
    if (data_seen & BIT(D_K)) {
        return NULL;
    }
    const uint32_t required = BIT(D_A) | BIT(D_T) | BIT(D_P) | BIT(D_Q) | BIT(D_M) | BIT(D_S);
    if ((data_seen & required) != required) {
        return NULL;
    }
    double price, size;
    if (!decimal(&data[D_P], &price) || !decimal(&data[D_Q], &size)) {
        return NULL;
    }
    PyObject *args[14] = {NULL}; /* the constants are the decoder's: borrowed */
    args[0] = symbol_of(self, &data[D_S], symbols);
    args[1] = nanos(data[D_T].integer);
    args[2] = PyFloat_FromDouble(price);
    args[3] = PyFloat_FromDouble(size);
    args[4] = self->trade;
    args[5] = ts_recv;
    args[6] = args[7] = args[8] = args[9] = self->zero;
    args[10] = self->empty;
    args[11] = data[D_M].boolean ? self->buyer_maker : self->empty;
    args[12] = Py_False;
    args[13] = integer_text(&data[D_A]);
    PyObject *tick = build(self->build_tick, args, 14);
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    Py_XDECREF(args[3]);
    Py_XDECREF(args[13]);
    return tick;
}

/* item(frame, ts_recv, symbols): the closed kline's TradeBar or the aggTrade's Tick of
 * ``frame``; for an in-progress kline, (its TradeBar, the frame's stream), what the caller
 * hands the feed as the frame's message; None when the frame is not one this reader takes
 * (the caller decodes it the usual way). */
static PyObject *
decoder_item(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    DecoderObject *self = (DecoderObject *)op;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "item(frame, ts_recv, symbols) takes 3 arguments");
        return NULL;
    }
    PyObject *frame = args[0], *ts_recv = args[1], *symbols = args[2];
    if (symbols != Py_None && !PyDict_CheckExact(symbols)) {
        Py_RETURN_NONE; /* a Mapping: its get() is the usual path's business */
    }
    const char *text;
    Py_ssize_t len;
    if (PyUnicode_CheckExact(frame)) {
        if (!PyUnicode_IS_COMPACT_ASCII(frame)) {
            Py_RETURN_NONE;
        }
        text = (const char *)PyUnicode_DATA(frame);
        len = PyUnicode_GET_LENGTH(frame);
    }
    else if (PyBytes_CheckExact(frame)) {
        text = PyBytes_AS_STRING(frame);
        len = PyBytes_GET_SIZE(frame);
    }
    else {
        Py_RETURN_NONE;
    }
    if (text[len] != '\0') {
        Py_RETURN_NONE; /* the reader's sentinel (see the reader): never so for str, bytes */
    }
    Value data[D_COUNT], body[B_COUNT], stream; /* only a seen field's value is set */
    stream.text = NULL;
    stream.len = 0;
    uint32_t data_seen = 0, body_seen = 0;
    if (!read_frame(text, len, data, &data_seen, body, &body_seen, &stream)
        || !(data_seen & BIT(D_E))) {
        Py_RETURN_NONE;
    }
    PyObject *item = NULL;
    if (data[D_E].len == 5 && memcmp(data[D_E].text, "kline", 5) == 0) {
        item = kline(self, data, data_seen, body, body_seen, ts_recv, symbols);
        if (item != NULL && !body[B_X].boolean) { /* in progress: (bar, stream) */
            PyObject *name = PyUnicode_FromStringAndSize(stream.text, stream.len);
            PyObject *pair = name == NULL ? NULL : PyTuple_Pack(2, item, name);
            Py_XDECREF(name);
            Py_DECREF(item);
            item = pair;
        }
    }
    else if (data[D_E].len == 8 && memcmp(data[D_E].text, "aggTrade", 8) == 0) {
        item = agg_trade(self, data, data_seen, ts_recv, symbols);
    }
    if (item == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return item;
}

static PyObject *
decoder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *canonical, *intervals, *build_bar, *build_tick, *trade;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Decoder() takes no keywords");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO!OOO:Decoder", &canonical, &PyDict_Type, &intervals,
                          &build_bar, &build_tick, &trade)) {
        return NULL;
    }
    DecoderObject *self = (DecoderObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(canonical);
    Py_INCREF(intervals);
    Py_INCREF(build_bar);
    Py_INCREF(build_tick);
    Py_INCREF(trade);
    self->canonical = canonical;
    self->intervals = intervals;
    self->build_bar = build_bar;
    self->build_tick = build_tick;
    self->trade = trade;
    self->zero = PyFloat_FromDouble(0.0);
    self->empty = PyUnicode_FromStringAndSize("", 0);
    self->buyer_maker = PyUnicode_FromString("buyer_maker");
    if (self->zero == NULL || self->empty == NULL || self->buyer_maker == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
decoder_traverse(DecoderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->canonical);
    Py_VISIT(self->intervals);
    Py_VISIT(self->build_bar);
    Py_VISIT(self->build_tick);
    Py_VISIT(self->trade);
    return 0;
}

static int
decoder_clear(DecoderObject *self)
{
    Py_CLEAR(self->canonical);
    Py_CLEAR(self->intervals);
    Py_CLEAR(self->build_bar);
    Py_CLEAR(self->build_tick);
    Py_CLEAR(self->trade);
    Py_CLEAR(self->zero);
    Py_CLEAR(self->empty);
    Py_CLEAR(self->buyer_maker);
    for (int i = 0; i < TEXTS; i++) {
        self->texts[i].len = 0;
        Py_CLEAR(self->texts[i].str);
    }
    return 0;
}

static void
decoder_dealloc(DecoderObject *self)
{
    PyObject_GC_UnTrack(self);
    decoder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef decoder_methods[] = {
    {"item", (PyCFunction)(void (*)(void))decoder_item, METH_FASTCALL,
     "item(frame, ts_recv, symbols): the closed kline's TradeBar or the aggTrade's Tick; "
     "(TradeBar, stream) for an in-progress kline; None when the frame is not one this "
     "reader takes."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lean_data._binance.Decoder",
    .tp_doc = "Decoder(canonical, intervals, build_bar, build_tick, trade): reads "
              "klines and aggTrades of Binance combined-stream frames in one C pass.",
    .tp_basicsize = sizeof(DecoderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = decoder_new,
    .tp_traverse = (traverseproc)decoder_traverse,
    .tp_clear = (inquiry)decoder_clear,
    .tp_dealloc = (destructor)decoder_dealloc,
    .tp_methods = decoder_methods,
};

static struct PyModuleDef binance_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lean_data._binance",
    .m_doc = "Klines and aggTrades of Binance frames in one C pass (see "
             "lean_data.wire.binance).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__binance(void)
{
    fill_lookup(DATA_LOOKUP, DATA_KINDS, DATA_FIELDS, D_COUNT);
    fill_lookup(BODY_LOOKUP, BODY_KINDS, BODY_FIELDS, B_COUNT);
    for (int ch = 0x20; ch < 0x7f; ch++) {
        PLAIN[ch] = ch != '"' && ch != '\\';
    }
    if (PyType_Ready(&DecoderType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&binance_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(module, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(&DecoderType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
