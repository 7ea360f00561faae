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

enum { K_NONE = 0, K_STR, K_INT, K_BOOL, K_OBJ };

typedef struct {
    int kind;          /* K_NONE: the key was absent */
    const char *text;  /* K_STR: the characters between the quotes */
    Py_ssize_t len;
    long long integer; /* K_INT */
    int boolean;       /* K_BOOL */
} Value;

typedef struct {
    const char *name;
    int kind;          /* the kind the schema declares */
} Field;

/* The envelope's data object: the union of a kline event's keys and an aggTrade's. */
enum { D_E, D_EVENT_TIME, D_S, D_K, D_A, D_P, D_Q, D_F, D_L, D_T, D_M, D_BIG_M, D_COUNT };
static const Field DATA_FIELDS[D_COUNT] = {
    {"e", K_STR}, {"E", K_INT}, {"s", K_STR}, {"k", K_OBJ}, {"a", K_INT}, {"p", K_STR},
    {"q", K_STR}, {"f", K_INT}, {"l", K_INT}, {"T", K_INT}, {"m", K_BOOL}, {"M", K_BOOL},
};

/* A kline's k object (lean_data.wire.binance_typed.KlineBody). */
enum {
    B_T, B_BIG_T, B_S, B_I, B_F, B_BIG_L, B_O, B_C, B_H, B_L, B_V, B_N, B_X, B_Q, B_BIG_V,
    B_BIG_Q, B_BIG_B, B_COUNT
};
static const Field BODY_FIELDS[B_COUNT] = {
    {"t", K_INT}, {"T", K_INT}, {"s", K_STR}, {"i", K_STR}, {"f", K_INT}, {"L", K_INT},
    {"o", K_STR}, {"c", K_STR}, {"h", K_STR}, {"l", K_STR}, {"v", K_STR}, {"n", K_INT},
    {"x", K_BOOL}, {"q", K_STR}, {"V", K_STR}, {"Q", K_STR}, {"B", K_STR},
};

/* Field index by the key's one character (-1: not a key of the schema); filled from the
 * tables above when the module loads. */
static signed char DATA_LOOKUP[128];
static signed char BODY_LOOKUP[128];

static void
fill_lookup(signed char *lookup, const Field *fields, int count)
{
    memset(lookup, -1, 128);
    for (int i = 0; i < count; i++) {
        lookup[(unsigned char)fields[i].name[0] & 0x7f] = (signed char)i;
    }
}

/* ------------------------------------------------------------------ the reader */

typedef struct {
    const char *p;
    const char *end;
} Cursor;

/* A string's characters, after its opening quote: printable ASCII, no escape. */
static int
read_string(Cursor *c, const char **text, Py_ssize_t *len)
{
    const char *start = c->p;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            *text = start;
            *len = c->p - start;
            c->p++;
            return 1;
        }
        if (ch < 0x20 || ch > 0x7e || ch == '\\') {
            return 0;
        }
        c->p++;
    }
    return 0;
}

/* A JSON integer of at most 18 digits, followed by ',' or '}' (a fraction or an exponent:
 * not this reader's). */
static int
read_integer(Cursor *c, long long *out)
{
    int negative = 0;
    if (c->p < c->end && *c->p == '-') {
        negative = 1;
        c->p++;
    }
    const char *start = c->p;
    long long value = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (c->p - start >= 18) {
            return 0;
        }
        value = value * 10 + (*c->p - '0');
        c->p++;
    }
    Py_ssize_t digits = c->p - start;
    if (digits == 0 || (digits > 1 && *start == '0')) {
        return 0;
    }
    if (c->p >= c->end || (*c->p != ',' && *c->p != '}')) {
        return 0;
    }
    *out = negative ? -value : value;
    return 1;
}

static int
read_literal(Cursor *c, const char *word, Py_ssize_t len)
{
    if (c->end - c->p < len || memcmp(c->p, word, (size_t)len) != 0) {
        return 0;
    }
    c->p += len;
    return 1;
}

static int read_object(Cursor *c, const Field *fields, const signed char *lookup, int count,
                       Value *values, int depth);

/* One value of the kind ``want`` declares (an object only where one is declared). */
static int
read_value(Cursor *c, int want, Value *value, int depth)
{
    if (c->p >= c->end) {
        return 0;
    }
    char ch = *c->p;
    if (ch == '"') {
        if (want != K_STR) {
            return 0;
        }
        c->p++;
        value->kind = K_STR;
        return read_string(c, &value->text, &value->len);
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        if (want != K_INT) {
            return 0;
        }
        value->kind = K_INT;
        return read_integer(c, &value->integer);
    }
    if (ch == 't' || ch == 'f') {
        if (want != K_BOOL) {
            return 0;
        }
        value->kind = K_BOOL;
        value->boolean = ch == 't';
        return ch == 't' ? read_literal(c, "true", 4) : read_literal(c, "false", 5);
    }
    if (ch == '{' && want == K_OBJ && depth == 0) {
        /* the data object's k: read into the caller's second table (see read_frame) */
        value->kind = K_OBJ;
        value->text = c->p;
        return 1;
    }
    return 0;
}

/* An object whose keys are all in ``fields``, none twice, each value of its declared kind.
 * The one nested object (``k``) is read into ``values + count`` with BODY_FIELDS. */
static int
read_object(Cursor *c, const Field *fields, const signed char *lookup, int count,
            Value *values, int depth)
{
    if (c->p >= c->end || *c->p != '{') {
        return 0;
    }
    c->p++;
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 1;
    }
    for (;;) {
        const char *key;
        Py_ssize_t key_len;
        if (c->p >= c->end || *c->p != '"') {
            return 0;
        }
        c->p++;
        if (!read_string(c, &key, &key_len)) {
            return 0;
        }
        if (c->p >= c->end || *c->p != ':') {
            return 0;
        }
        c->p++;
        /* every key of these schemas is one character: a table lookup finds its field */
        int index = key_len == 1 ? lookup[(unsigned char)key[0] & 0x7f] : -1;
        if (index < 0 || values[index].kind != K_NONE) {
            return 0; /* a key the schema does not know, or one seen before */
        }
        if (!read_value(c, fields[index].kind, &values[index], depth)) {
            return 0;
        }
        if (values[index].kind == K_OBJ) {
            if (!read_object(c, BODY_FIELDS, BODY_LOOKUP, B_COUNT, values + count, depth + 1)) {
                return 0;
            }
        }
        if (c->p >= c->end) {
            return 0;
        }
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p == '}') {
            c->p++;
            return 1;
        }
        return 0;
    }
}

/* The envelope {"stream": str, "data": {...}} (either order) and nothing after it. */
static int
read_frame(const char *text, Py_ssize_t len, Value *data, Value *stream)
{
    Cursor c = {text, text + len};
    int have_stream = 0, have_data = 0;
    if (c.p >= c.end || *c.p != '{') {
        return 0;
    }
    c.p++;
    for (;;) {
        if (read_literal(&c, "\"stream\":\"", 10)) {
            if (have_stream || !read_string(&c, &stream->text, &stream->len)) {
                return 0;
            }
            stream->kind = K_STR;
            have_stream = 1;
        }
        else if (read_literal(&c, "\"data\":", 7)) {
            /* data's values, then k's right after them (data + D_COUNT) */
            if (have_data || !read_object(&c, DATA_FIELDS, DATA_LOOKUP, D_COUNT, data, 0)) {
                return 0;
            }
            have_data = 1;
        }
        else {
            return 0;
        }
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}') {
            c.p++;
            break;
        }
        return 0;
    }
    return have_stream && have_data && c.p == c.end;
}

/* ------------------------------------------------------------------ building the item */

/* float(text) for a decimal string -?[0-9]+(.[0-9]+)? of at most 63 characters. */
static int
decimal(const Value *value, double *out)
{
    char buffer[64];
    Py_ssize_t len = value->len;
    const char *s = value->text;
    if (len < 1 || len > 63) {
        return 0;
    }
    Py_ssize_t i = 0;
    if (s[0] == '-') {
        i = 1;
    }
    Py_ssize_t digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (digits == 0) {
        return 0;
    }
    if (i < len) {
        if (s[i] != '.') {
            return 0;
        }
        i++;
        Py_ssize_t fraction = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            fraction++;
        }
        if (fraction == 0 || i != len) {
            return 0;
        }
    }
    /* Clinger's fast path: with at most 15 significant digits the digits are an exact
     * double m, 10^k (k <= 22) is exact, and IEEE division rounds m / 10^k correctly: the
     * double nearest the decimal value, which is what float() returns. CPython's own
     * parser (below, for everything else) costs several times more per call. */
    static const double powers[23] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
        1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    };
    {
        int64_t mantissa = 0;
        int significant = 0, scale = 0, seen_point = 0;
        Py_ssize_t j = s[0] == '-' ? 1 : 0;
        for (; j < len; j++) {
            char ch = s[j];
            if (ch == '.') {
                seen_point = 1;
                continue;
            }
            if (mantissa != 0 || ch != '0') {
                significant++;
            }
            mantissa = mantissa * 10 + (ch - '0');
            if (seen_point) {
                scale++;
            }
            if (significant > 15 || scale > 22) {
                break;
            }
        }
        if (j == len) {
            double value = (double)mantissa / powers[scale];
            *out = s[0] == '-' ? -value : value;
            return 1;
        }
    }
    memcpy(buffer, s, (size_t)len);
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
    unsigned int hash = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < len; i++) {
        hash = (hash ^ (unsigned char)text[i]) * 16777619u;
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
kline(DecoderObject *self, const Value *data, const Value *body, PyObject *ts_recv,
      PyObject *symbols)
{
    for (int i = 0; i < D_COUNT; i++) { /* a kline event has e, E, s and k only */
        if (data[i].kind != K_NONE && i != D_E && i != D_EVENT_TIME && i != D_S && i != D_K) {
            return NULL;
        }
    }
    if (data[D_K].kind != K_OBJ) {
        return NULL;
    }
    static const int required[] = {B_T, B_S, B_I, B_O, B_C, B_H, B_L, B_V, B_X};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (body[required[i]].kind == K_NONE) {
            return NULL;
        }
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
    PyErr_Clear();
    PyObject *bar = build(self->build_bar, args, 12);
    for (int i = 0; i < 12; i++) {
        if (i != 8 && i != 9 && i != 11) { /* ts_recv, True, False: borrowed */
            Py_XDECREF(args[i]);
        }
    }
    return bar;
}

/* str(value): what "%lld" formats, without PyUnicode_FromFormat's format parsing (~1,400
 * instructions a trade id) */
static PyObject *
integer_text(long long value)
{
    char buf[24];
    char *p = buf + sizeof(buf);
    unsigned long long rest = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        *--p = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    if (value < 0) {
        *--p = '-';
    }
    Py_ssize_t len = buf + sizeof(buf) - p;
    PyObject *text = PyUnicode_New(len, 127);
    if (text != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(text), p, (size_t)len);
    }
    return text;
}

static PyObject *
agg_trade(DecoderObject *self, const Value *data, PyObject *ts_recv, PyObject *symbols)
{
    if (data[D_K].kind != K_NONE) {
        return NULL;
    }
    static const int required[] = {D_A, D_T, D_P, D_Q, D_M, D_S};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (data[required[i]].kind == K_NONE) {
            return NULL;
        }
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
    args[13] = integer_text(data[D_A].integer);
    PyErr_Clear();
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
    Value values[D_COUNT + B_COUNT], stream;
    memset(values, 0, sizeof(values));
    memset(&stream, 0, sizeof(stream));
    const Value *data = values, *body = values + D_COUNT;
    if (!read_frame(text, len, values, &stream) || data[D_E].kind != K_STR) {
        Py_RETURN_NONE;
    }
    PyObject *item = NULL;
    if (data[D_E].len == 5 && memcmp(data[D_E].text, "kline", 5) == 0) {
        item = kline(self, data, body, ts_recv, symbols);
        if (item != NULL && !body[B_X].boolean) { /* in progress: (bar, stream) */
            PyObject *name = PyUnicode_FromStringAndSize(stream.text, stream.len);
            PyObject *pair = name == NULL ? NULL : PyTuple_Pack(2, item, name);
            Py_XDECREF(name);
            Py_DECREF(item);
            item = pair;
        }
    }
    else if (data[D_E].len == 8 && memcmp(data[D_E].text, "aggTrade", 8) == 0) {
        item = agg_trade(self, data, ts_recv, symbols);
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
    fill_lookup(DATA_LOOKUP, DATA_FIELDS, D_COUNT);
    fill_lookup(BODY_LOOKUP, BODY_FIELDS, B_COUNT);
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
