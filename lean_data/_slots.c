/* lean_data._slots: read and fill a model's slots in one C call.
 *
 * The models (TradeBar, QuoteBar, Tick) are pure-Python frozen slotted dataclasses. Compiled
 * by mypyc, every read of one of their fields is a generic attribute lookup (about 160
 * instructions: the type's MRO cache, the slot's member descriptor, its getter), and the
 * engine's stages read about sixty per bar. A Slots object knows the offsets of one model's
 * slots and reads them all into a tuple in one call, or builds an instance from its values,
 * for an object of exactly that model; for anything else (a user's subclass, which may
 * override a field with a property) it falls back to the generic lookups and the class's
 * own constructor, so the result is always what getattr and the class give.
 *
 * An instance built here whose every field is of a type the garbage collector does not
 * track (str, int, float, bool, None) or of one of the ``constants`` types (Resolution,
 * TickType: interned values that never refer to a model) cannot be part of a reference
 * cycle, so it is untracked, as CPython untracks a tuple of such values: the collector then
 * never traverses it (a ring buffer holds thousands of ticks, which every full collection
 * would otherwise walk).
 *
 * A reader remembers the exact instance it read last and the tuple it returned: the models
 * are frozen, so the next read of the same object (the pipeline's stages each read a bar's
 * fields) returns that tuple again. It holds a reference to the instance, so no other
 * object can take its address.
 *
 * lean_data/slots.py wraps this module and has the pure-Python twin (operator.attrgetter,
 * the class itself) used when this extension is not built.
 *
 * mark_seen(items, last_seen, now, readers) is the first part of a feed's hand-over
 * (lean_data.feeds.intake.hand_over, where its pure twin, which takes none, documents the
 * contract): for the leading items of the list ``items`` that are exactly the class of one
 * of ``readers`` (Slots of ("ts_recv", "symbol")), hold a receive time that is a non-zero
 * int and a symbol that is a str, ``last_seen[symbol] = now``, in order; it stops at the
 * first other item and returns its index (len(items) when it took them all), for the
 * caller's own loop to go on from there. Per item, a type check and two slot reads where
 * the compiled loop made a reader call and a tuple.
 *
 * plain_tick(fields, skew_ns, now) and plain_bar(fields, skew_ns, now) are the screen's
 * one-expression checks (lean_data.quality.screen: _plain_tick and _plain_bar, the pure
 * twins, define them) over a Tick's or a TradeBar's fields tuple: True when every value is
 * plainly sane, False when one is not, each exactly where the pure twin answers so. None
 * where they do not read a value as the twin does (a number that is not an exact float, a
 * skew or a clock's answer that is not an exact int of 64 bits, the limits not given yet):
 * the caller asks the pure twin then. The limits, the TickType members, the Resolution
 * class and the tuples' indexes are the screen's, given once by screen_limits().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;     /* the model: its exact instances take the fast path */
    PyObject *names;       /* tuple of the field names, in the class's field order */
    Py_ssize_t count;
    Py_ssize_t *offsets;   /* where each field's slot is in an instance */
    PyObject *constants;   /* tuple of types whose instances never refer to a model */
    PyObject *last_item;   /* the exact instance read last, and its fields (or NULL) */
    PyObject *last_fields;
    vectorcallfunc vectorcall;
} SlotsObject;

static PyTypeObject SlotsType;

/* The fields of ``item`` as a tuple: its slots when it is exactly ``cls``, else getattr. */
static PyObject *
slots_read(SlotsObject *self, PyObject *item)
{
    if (item == self->last_item) {  /* frozen: the same fields as last time */
        Py_INCREF(self->last_fields);
        return self->last_fields;
    }
    Py_ssize_t count = self->count;
    PyObject *result = PyTuple_New(count);
    if (result == NULL) {
        return NULL;
    }
    if (Py_TYPE(item) == self->cls) {
        char *base = (char *)item;
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *value = *(PyObject **)(base + self->offsets[i]);
            if (value == NULL) {  /* a slot never filled: what getattr raises */
                Py_DECREF(result);
                PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%U'",
                             Py_TYPE(item)->tp_name, PyTuple_GET_ITEM(self->names, i));
                return NULL;
            }
            Py_INCREF(value);
            PyTuple_SET_ITEM(result, i, value);
        }
        PyObject *old_item = self->last_item, *old_fields = self->last_fields;
        Py_INCREF(item);
        Py_INCREF(result);
        self->last_item = item;
        self->last_fields = result;
        Py_XDECREF(old_item);
        Py_XDECREF(old_fields);
        return result;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = PyObject_GetAttr(item, PyTuple_GET_ITEM(self->names, i));
        if (value == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyTuple_SET_ITEM(result, i, value);
    }
    return result;
}

static PyObject *
slots_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "a Slots reader takes one model object");
        return NULL;
    }
    return slots_read((SlotsObject *)self, args[0]);
}

/* A new instance of ``cls`` holding ``args`` (every field, in order), without running a
 * constructor: the model's own __new__ only fills these slots and its __init__ is
 * object.__init__. */
static PyObject *
slots_fill(SlotsObject *self, PyObject *const *args)
{
    PyTypeObject *cls = self->cls;
    PyObject *item = cls->tp_alloc(cls, 0);
    if (item == NULL) {
        return NULL;
    }
    char *base = (char *)item;
    int atomic = PyObject_GC_IsTracked(item);
    for (Py_ssize_t i = 0; i < self->count; i++) {
        PyObject *value = args[i];
        Py_INCREF(value);
        *(PyObject **)(base + self->offsets[i]) = value;
        if (atomic && PyObject_IS_GC(value)) {
            atomic = 0;
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(self->constants); k++) {
                if ((PyObject *)Py_TYPE(value) == PyTuple_GET_ITEM(self->constants, k)) {
                    atomic = 1;
                    break;
                }
            }
        }
    }
    if (atomic) {  /* no field can lead back to it: no cycle for the collector to find */
        PyObject_GC_UnTrack(item);
    }
    return item;
}

static PyObject *
slots_build(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    SlotsObject *self = (SlotsObject *)op;
    if (nargs != self->count) {
        PyErr_Format(PyExc_TypeError, "build() takes the %zd fields of %s, got %zd values",
                     self->count, self->cls->tp_name, nargs);
        return NULL;
    }
    return slots_fill(self, args);
}

/* A copy of ``item`` with field ``index`` set to ``value``: for an exact instance its slots
 * are copied; anything else is copied by dataclasses.replace (``fallback``). */
static PyObject *
slots_with(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    SlotsObject *self = (SlotsObject *)op;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "with_value() takes an item, a field index, a value and a fallback");
        return NULL;
    }
    PyObject *item = args[0];
    Py_ssize_t index = PyLong_AsSsize_t(args[1]);
    if (index == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (index < 0 || index >= self->count) {
        PyErr_Format(PyExc_IndexError, "field index %zd out of range", index);
        return NULL;
    }
    if (Py_TYPE(item) != self->cls) {
        PyObject *call_args[3] = {item, args[1], args[2]};
        return PyObject_Vectorcall(args[3], call_args, 3, NULL);
    }
    PyObject *values[64];
    char *base = (char *)item;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        values[i] = *(PyObject **)(base + self->offsets[i]);
        if (values[i] == NULL) {
            PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%U'",
                         Py_TYPE(item)->tp_name, PyTuple_GET_ITEM(self->names, i));
            return NULL;
        }
    }
    values[index] = args[2];
    return slots_fill(self, values);
}

static PyObject *
slots_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *cls, *names, *constants = NULL;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Slots(cls, names, constants=()) takes no keywords");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!|O!:Slots", &PyType_Type, &cls, &PyTuple_Type, &names,
                          &PyTuple_Type, &constants)) {
        return NULL;
    }
    if (constants == NULL) {
        constants = PyTuple_New(0);
        if (constants == NULL) {
            return NULL;
        }
    }
    else {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(constants); k++) {
            if (!PyType_Check(PyTuple_GET_ITEM(constants, k))) {
                PyErr_SetString(PyExc_TypeError, "Slots constants must be a tuple of types");
                return NULL;
            }
        }
        Py_INCREF(constants);
    }
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    if (count == 0 || count > 64) {
        Py_DECREF(constants);
        PyErr_SetString(PyExc_ValueError, "Slots takes 1 to 64 field names");
        return NULL;
    }
    Py_ssize_t *offsets = PyMem_New(Py_ssize_t, count);
    if (offsets == NULL) {
        Py_DECREF(constants);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name)) {
            PyMem_Free(offsets);
            Py_DECREF(constants);
            PyErr_SetString(PyExc_TypeError, "field names must be str");
            return NULL;
        }
        PyObject *descr = PyObject_GetAttr(cls, name);
        if (descr == NULL) {
            PyMem_Free(offsets);
            Py_DECREF(constants);
            return NULL;
        }
        int is_slot = Py_IS_TYPE(descr, &PyMemberDescr_Type)
                      && ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX
                      && PyType_IsSubtype((PyTypeObject *)cls,
                                          ((PyDescrObject *)descr)->d_type);
        if (is_slot) {
            offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        }
        Py_DECREF(descr);
        if (!is_slot) {
            PyMem_Free(offsets);
            Py_DECREF(constants);
            PyErr_Format(PyExc_TypeError, "%R is not an object slot of %R", name, cls);
            return NULL;
        }
    }
    SlotsObject *self = (SlotsObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyMem_Free(offsets);
        Py_DECREF(constants);
        return NULL;
    }
    Py_INCREF(cls);
    self->cls = (PyTypeObject *)cls;
    Py_INCREF(names);
    self->names = names;
    self->count = count;
    self->offsets = offsets;
    self->constants = constants;
    self->vectorcall = slots_vectorcall;
    return (PyObject *)self;
}

static PyObject *
slots_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs)) || PyTuple_GET_SIZE(args) != 1) {
        PyErr_SetString(PyExc_TypeError, "a Slots reader takes one model object");
        return NULL;
    }
    return slots_read((SlotsObject *)self, PyTuple_GET_ITEM(args, 0));
}

static int
slots_traverse(SlotsObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->cls);
    Py_VISIT(self->names);
    Py_VISIT(self->constants);
    Py_VISIT(self->last_item);
    Py_VISIT(self->last_fields);
    return 0;
}

static int
slots_clear(SlotsObject *self)
{
    Py_CLEAR(self->cls);
    Py_CLEAR(self->names);
    Py_CLEAR(self->constants);
    Py_CLEAR(self->last_item);
    Py_CLEAR(self->last_fields);
    return 0;
}

static void
slots_dealloc(SlotsObject *self)
{
    PyObject_GC_UnTrack(self);
    slots_clear(self);
    PyMem_Free(self->offsets);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
slots_get_cls(SlotsObject *self, void *closure)
{
    Py_INCREF(self->cls);
    return (PyObject *)self->cls;
}

static PyObject *
slots_get_names(SlotsObject *self, void *closure)
{
    Py_INCREF(self->names);
    return self->names;
}

static PyMethodDef slots_methods[] = {
    {"build", (PyCFunction)(void (*)(void))slots_build, METH_FASTCALL,
     "build(*values): a new instance of the class holding every field, in order."},
    {"with_value", (PyCFunction)(void (*)(void))slots_with, METH_FASTCALL,
     "with_value(item, index, value, fallback): a copy with one field set; fallback(item, "
     "index, value) copies anything that is not exactly the class."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef slots_getset[] = {
    {"cls", (getter)slots_get_cls, NULL, "the model class", NULL},
    {"names", (getter)slots_get_names, NULL, "the field names, in order", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SlotsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lean_data._slots.Slots",
    .tp_doc = "Slots(cls, names, constants=()): read a model's fields into a tuple (call), build one.",
    .tp_basicsize = sizeof(SlotsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = slots_new,
    .tp_call = slots_call,
    .tp_vectorcall_offset = offsetof(SlotsObject, vectorcall),
    .tp_traverse = (traverseproc)slots_traverse,
    .tp_clear = (inquiry)slots_clear,
    .tp_dealloc = (destructor)slots_dealloc,
    .tp_methods = slots_methods,
    .tp_getset = slots_getset,
};

static PyObject *
mark_seen(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyDict_CheckExact(args[1]) || !PyTuple_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "mark_seen(items, last_seen: dict, now, readers: tuple)");
        return NULL;
    }
    PyObject *items = args[0], *last_seen = args[1], *now = args[2], *readers = args[3];
    Py_ssize_t count = PyTuple_GET_SIZE(readers);
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *reader = PyTuple_GET_ITEM(readers, r);
        if (!PyObject_TypeCheck(reader, &SlotsType) || ((SlotsObject *)reader)->count != 2) {
            PyErr_SetString(PyExc_TypeError, "mark_seen: readers are Slots of two fields");
            return NULL;
        }
    }
    if (!PyList_CheckExact(items)) {
        return PyLong_FromSsize_t(0);  /* the caller's loop takes them all */
    }
    Py_ssize_t i = 0;
    for (; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        SlotsObject *reader = NULL;
        for (Py_ssize_t r = 0; r < count; r++) {
            SlotsObject *candidate = (SlotsObject *)PyTuple_GET_ITEM(readers, r);
            if (Py_TYPE(item) == candidate->cls) {
                reader = candidate;
                break;
            }
        }
        if (reader == NULL) {
            break;
        }
        PyObject *recv = *(PyObject **)((char *)item + reader->offsets[0]);
        PyObject *symbol = *(PyObject **)((char *)item + reader->offsets[1]);
        if (recv == NULL || symbol == NULL || !PyLong_CheckExact(recv)
            || !PyUnicode_CheckExact(symbol)) {
            break;
        }
        int overflow = 0;
        if (PyLong_AsLongLongAndOverflow(recv, &overflow) == 0 && overflow == 0) {
            break;  /* 0: the caller stamps it */
        }
        if (PyDict_SetItem(last_seen, symbol, now) < 0) {
            return NULL;
        }
    }
    return PyLong_FromSsize_t(i);
}

/* ---------------------------------------------------------------- the screen's checks */

enum { T_TS, T_RECV, T_SYMBOL, T_TYPE, T_PRICE, T_SIZE, T_BID, T_ASK, T_BID_SIZE,
       T_ASK_SIZE, T_EXCHANGE, T_CONDITION, T_TRADE_ID, T_COUNT };
enum { B_TS, B_RECV, B_SYMBOL, B_OPEN, B_HIGH, B_LOW, B_CLOSE, B_VOLUME, B_REVISION,
       B_RESOLUTION, B_CLOSED, B_BACKFILLED, B_COUNT };

static int SCREEN_READY = 0;
static long long MIN_EVENT, FAST_MAX;
static double MAX_PRICE, MAX_SIZE;
static PyObject *TRADE_TYPE, *QUOTE_TYPE, *RESOLUTION_TYPE;  /* strong references */
static Py_ssize_t TICK_AT[T_COUNT], BAR_AT[B_COUNT], TICK_LEN, BAR_LEN;

/* ``value`` as a C long long: 1 when it is an exact int of 64 bits, else 0 (no error). */
static int
exact_int64(PyObject *value, long long *out)
{
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = v;
    return 1;
}

/* A str of ASCII characters only (str.isascii of an exact str). -1 on error. */
static int
ascii_text(PyObject *value)
{
    if (!PyUnicode_CheckExact(value)) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(value) < 0) {
        return -1;
    }
#endif
    return PyUnicode_IS_ASCII(value) ? 1 : 0;
}

#define NOT_READ 2  /* a value the C reading does not take: the pure twin answers */

/* _plain_times: 1 plain, 0 not, NOT_READ, -1 when the clock raised. A time that is not an
 * exact int, or one beyond int64, fails the twin's own type or range test: 0, as there. */
static int
plain_times(PyObject *ts, PyObject *recv, PyObject *symbol, PyObject *skew, PyObject *now)
{
    long long t, r, limit, base;
    if (!exact_int64(ts, &t) || !exact_int64(recv, &r)) {
        return 0;
    }
    if (t < MIN_EVENT || t > FAST_MAX || r < 0 || r > FAST_MAX) {
        return 0;
    }
    if (!exact_int64(skew, &limit)) {
        return NOT_READ;
    }
    base = r;
    if (base == 0) {  /* no receive time: the clock, read only then */
        PyObject *clock = PyObject_CallNoArgs(now);
        if (clock == NULL) {
            return -1;
        }
        int read = exact_int64(clock, &base);
        Py_DECREF(clock);
        if (!read || base < 0) {
            return NOT_READ;  /* the twin reads the clock again, as it does */
        }
    }
    if (t - base > limit) {  /* t in [MIN_EVENT, 2**62), base in [0, 2**63): no overflow */
        return 0;
    }
    return ascii_text(symbol);
}

static int
floats(PyObject *const *values, Py_ssize_t count, double *out)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyFloat_CheckExact(values[i])) {
            return 0;
        }
        out[i] = PyFloat_AS_DOUBLE(values[i]);
    }
    return 1;
}

static PyObject *
plain_answer(int answer)
{
    if (answer < 0) {
        return NULL;
    }
    if (answer == NOT_READ) {
        Py_RETURN_NONE;
    }
    return PyBool_FromLong(answer);
}

/* What both plain checks do first: the fields tuple when its times and symbol are plain, so
 * its values are to be judged; else NULL, with *answer what to return (None, False, or NULL
 * with an exception set). */
static PyObject *
plain_fields(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t length, const Py_ssize_t *at,
             int ts, int recv, int symbol, const char *usage, PyObject **answer)
{
    *answer = NULL;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    PyObject *f = args[0];
    if (!SCREEN_READY || !PyTuple_CheckExact(f) || PyTuple_GET_SIZE(f) != length) {
        *answer = Py_NewRef(Py_None);
        return NULL;
    }
    int plain = plain_times(PyTuple_GET_ITEM(f, at[ts]), PyTuple_GET_ITEM(f, at[recv]),
                            PyTuple_GET_ITEM(f, at[symbol]), args[1], args[2]);
    if (plain != 1) {  /* not plain, not read here (NOT_READ), or an error */
        *answer = plain_answer(plain);
        return NULL;
    }
    return f;
}

static PyObject *
plain_tick(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *answer;
    PyObject *f = plain_fields(args, nargs, TICK_LEN, TICK_AT, T_TS, T_RECV, T_SYMBOL,
                               "plain_tick(fields, skew_ns, now)", &answer);
    if (f == NULL) {
        return answer;
    }
#define TF(k) PyTuple_GET_ITEM(f, TICK_AT[k])
    PyObject *numbers[6] = {TF(T_PRICE), TF(T_SIZE), TF(T_BID), TF(T_ASK), TF(T_BID_SIZE),
                            TF(T_ASK_SIZE)};
    double v[6];
    if (!floats(numbers, 6, v)) {
        Py_RETURN_NONE;  /* an int or another number: the twin compares it as it is */
    }
    double price = v[0], size = v[1], bid = v[2], ask = v[3], bid_size = v[4], ask_size = v[5];
    PyObject *type = TF(T_TYPE);
    int sane;
    if (type == TRADE_TYPE) {
        sane = 0.0 < price && price <= MAX_PRICE && 0.0 <= size && size <= MAX_SIZE
            && -MAX_PRICE <= bid && bid <= MAX_PRICE && -MAX_PRICE <= ask && ask <= MAX_PRICE
            && -MAX_SIZE <= bid_size && bid_size <= MAX_SIZE
            && -MAX_SIZE <= ask_size && ask_size <= MAX_SIZE;
    }
    else if (type == QUOTE_TYPE) {
        sane = 0.0 < bid && bid <= ask && ask <= MAX_PRICE
            && 0.0 <= bid_size && bid_size <= MAX_SIZE && 0.0 <= ask_size && ask_size <= MAX_SIZE
            && -MAX_PRICE <= price && price <= MAX_PRICE && -MAX_SIZE <= size && size <= MAX_SIZE;
    }
    else {
        sane = 0;
    }
    if (!sane) {
        Py_RETURN_FALSE;
    }
    PyObject *texts[3] = {TF(T_EXCHANGE), TF(T_CONDITION), TF(T_TRADE_ID)};
#undef TF
    for (int i = 0; i < 3; i++) {
        int text = ascii_text(texts[i]);
        if (text <= 0) {
            return plain_answer(text);
        }
    }
    Py_RETURN_TRUE;
}

static PyObject *
plain_bar(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *answer;
    PyObject *f = plain_fields(args, nargs, BAR_LEN, BAR_AT, B_TS, B_RECV, B_SYMBOL,
                               "plain_bar(fields, skew_ns, now)", &answer);
    if (f == NULL) {
        return answer;
    }
#define BF(k) PyTuple_GET_ITEM(f, BAR_AT[k])
    PyObject *numbers[5] = {BF(B_OPEN), BF(B_HIGH), BF(B_LOW), BF(B_CLOSE), BF(B_VOLUME)};
    double v[5];
    if (!floats(numbers, 5, v)) {
        Py_RETURN_NONE;  /* an int or another number: the twin compares it as it is */
    }
    double o = v[0], h = v[1], lo = v[2], c = v[3], volume = v[4];
    long long revision;
    int sane = 0.0 < lo && lo <= o && o <= h && h <= MAX_PRICE && lo <= c && c <= h
        && 0.0 <= volume && volume <= MAX_SIZE
        && exact_int64(BF(B_REVISION), &revision) && 0 <= revision && revision <= FAST_MAX
        && (PyObject *)Py_TYPE(BF(B_RESOLUTION)) == RESOLUTION_TYPE
        && PyBool_Check(BF(B_CLOSED)) && PyBool_Check(BF(B_BACKFILLED));
#undef BF
    return PyBool_FromLong(sane);
}

/* The indexes of a fields tuple, ``count`` of them, each in [0, length). */
static int
read_indexes(PyObject *given, Py_ssize_t *out, Py_ssize_t count, Py_ssize_t length)
{
    if (!PyTuple_CheckExact(given) || PyTuple_GET_SIZE(given) != count) {
        PyErr_Format(PyExc_TypeError, "screen_limits: expected a tuple of %zd indexes", count);
        return 0;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(given, i));
        if (at == -1 && PyErr_Occurred()) {
            return 0;
        }
        if (at < 0 || at >= length) {
            PyErr_Format(PyExc_ValueError, "screen_limits: index %zd outside %zd fields", at,
                         length);
            return 0;
        }
        out[i] = at;
    }
    return 1;
}

static PyObject *
screen_limits(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError,
                        "screen_limits(min_event_ns, fast_max, max_price, max_size, trade, "
                        "quote, resolution, tick_indexes, tick_length, bar_indexes, bar_length)");
        return NULL;
    }
    long long min_event, fast_max;
    if (!exact_int64(args[0], &min_event) || !exact_int64(args[1], &fast_max)) {
        PyErr_SetString(PyExc_TypeError, "screen_limits: the times are ints of 64 bits");
        return NULL;
    }
    double max_price = PyFloat_AsDouble(args[2]), max_size = PyFloat_AsDouble(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t tick_len = PyLong_AsSsize_t(args[8]), bar_len = PyLong_AsSsize_t(args[10]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t tick_at[T_COUNT], bar_at[B_COUNT];
    if (!read_indexes(args[7], tick_at, T_COUNT, tick_len)
        || !read_indexes(args[9], bar_at, B_COUNT, bar_len)) {
        return NULL;
    }
    if (!PyType_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "screen_limits: resolution is a class");
        return NULL;
    }
    Py_INCREF(args[4]);
    Py_INCREF(args[5]);
    Py_INCREF(args[6]);
    Py_XSETREF(TRADE_TYPE, args[4]);
    Py_XSETREF(QUOTE_TYPE, args[5]);
    Py_XSETREF(RESOLUTION_TYPE, args[6]);
    MIN_EVENT = min_event;
    FAST_MAX = fast_max;
    MAX_PRICE = max_price;
    MAX_SIZE = max_size;
    memcpy(TICK_AT, tick_at, sizeof tick_at);
    memcpy(BAR_AT, bar_at, sizeof bar_at);
    TICK_LEN = tick_len;
    BAR_LEN = bar_len;
    SCREEN_READY = 1;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"mark_seen", (PyCFunction)(void (*)(void))mark_seen, METH_FASTCALL,
     "mark_seen(items, last_seen, now, readers): last_seen[symbol] = now for the leading "
     "items it can read; the index of the first it did not take."},
    {"plain_tick", (PyCFunction)(void (*)(void))plain_tick, METH_FASTCALL,
     "plain_tick(fields, skew_ns, now): True when a Tick's fields are plainly sane "
     "(lean_data.quality.screen._plain_tick), False when not, None when not read here."},
    {"plain_bar", (PyCFunction)(void (*)(void))plain_bar, METH_FASTCALL,
     "plain_bar(fields, skew_ns, now): True when a TradeBar's fields are plainly sane "
     "(lean_data.quality.screen._plain_bar), False when not, None when not read here."},
    {"screen_limits", (PyCFunction)(void (*)(void))screen_limits, METH_FASTCALL,
     "screen_limits(...): the screen's limits, kinds and field indexes, given once."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef slots_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lean_data._slots",
    .m_doc = "Read and fill a model's slots in one C call (see lean_data.slots).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__slots(void)
{
    if (PyType_Ready(&SlotsType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&slots_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&SlotsType);
    if (PyModule_AddObject(module, "Slots", (PyObject *)&SlotsType) < 0) {
        Py_DECREF(&SlotsType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
