/* lean_data._rows: rows in one C pass: the parameters of a multi-row statement, and a
 * trade bar's row of the ring buffer.
 *
 * statement_values(rows, start, end, ids) is lean_data.storage.rows.statement_values (its
 * pure twin, which documents the contract): the values of rows[start:end] in one list,
 * True/False as 1/0, and with ids (a dict) each row's first three values replaced by
 * ids[(row[0], row[1], row[2])]. The SQLite writer calls it on the event loop's thread for
 * every statement; the mypyc build of the loop spent ~2,800 instructions a trade bar row
 * there, this one a few hundred.
 *
 * Errors are the pure twin's: KeyError (the key tuple) for a series not in ids, TypeError
 * for an unhashable key, TypeError for rows that are not a list of tuples, IndexError
 * for start/end outside the list or a row of fewer than three values with ids.
 *
 * pack_bar(rows, offset, fields) writes a TradeBar's row of lean_data.series.buffer (its
 * fields as lean_data.slots.BAR reads them) into the bytearray ``rows`` at ``offset``: what
 * that module's struct ("@lddddd" + "l", 56 bytes) packs, converted the same way (an
 * integer or an object with __index__ for the times, anything float() takes for the
 * prices), without struct's argument parsing. Anything that does not fit raises (the buffer
 * then keeps the bar object itself): IndexError when the row is not allocated, TypeError or
 * OverflowError for a value, as struct raises struct.error.
 *
 * remember_bar(values, opens, slot, fields) is continuity's in-order fast path
 * (lean_data.series.continuity.Continuity.admit_in): the bar's revision and OHLCV packed as
 * its "@q5d" slot at values[slot * 48] and its open time set at opens[slot] (an
 * array("q")), the two writes its pure twin makes with struct and the array, after every
 * value converted (nothing written when one does not fit).
 *
 * put_int64(values, index, value) is ``values[index] = value`` for an array("q") (or a
 * list), without the array's argument parsing: the quality tracker's latency window.
 *
 * Latch() is the ring buffer's lock: threading.Lock's acquire() (blocking, no arguments),
 * release() and ``with``, with no argument parsing. The buffer's add takes and releases it
 * for every item; threading.Lock's acquire parses (blocking, timeout) on each call, ~300
 * instructions of ~650 for the pair. The same lock underneath (PyThread); a wait releases
 * the GIL and runs signal handlers (an exception they raise ends the wait, unlocked);
 * release() of a latch that is not held raises RuntimeError, as threading.Lock's does.
 * OverflowError beyond int64 and TypeError for a value that is not an int, as the array
 * raises; IndexError outside it.
 *
 * coarse_clock() is monotonic seconds to the kernel's last tick: the metrics' clock; time_ns()
 * is time.time_ns() with less around the read: the receipt and delivery times.
 *
 * ring_put(slots, index, item) is the ring buffer's store, which asks for the lines of what
 * its next stores free (see its section below).
 *
 * Samples(size) is a ring of the last ``size`` ints appended, kept as int64 values (see
 * its section below): the metrics' latency samples.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <limits.h>
#include <string.h>
#include <structmember.h>
#include <time.h>

static PyObject *ZERO, *ONE;

static PyObject *
statement_values(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "statement_values(rows, start, end, ids=None)");
        return NULL;
    }
    PyObject *rows = args[0];
    PyObject *ids = nargs == 4 ? args[3] : Py_None;
    if (!PyList_Check(rows)) {
        PyErr_Format(PyExc_TypeError, "rows must be a list, got %.100s", Py_TYPE(rows)->tp_name);
        return NULL;
    }
    if (ids != Py_None && !PyDict_Check(ids)) {
        PyErr_Format(PyExc_TypeError, "ids must be a dict or None, got %.100s",
                     Py_TYPE(ids)->tp_name);
        return NULL;
    }
    Py_ssize_t start = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t end = PyNumber_AsSsize_t(args[2], PyExc_OverflowError);
    if (end == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t length = PyList_GET_SIZE(rows);
    if (start < end && (start < 0 || end > length)) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return NULL;
    }
    Py_ssize_t first = ids == Py_None ? 0 : 3;
    Py_ssize_t total = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row)) {
            PyErr_Format(PyExc_TypeError, "a row must be a tuple, got %.100s",
                         Py_TYPE(row)->tp_name);
            return NULL;
        }
        Py_ssize_t size = PyTuple_GET_SIZE(row);
        if (size < first) {
            PyErr_SetString(PyExc_IndexError, "tuple index out of range");
            return NULL;
        }
        total += size - first + (first ? 1 : 0);
    }
    PyObject *values = PyList_New(total);
    if (values == NULL) {
        return NULL;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        Py_ssize_t size = PyTuple_GET_SIZE(row);
        if (first) {
            PyObject *key = PyTuple_GetSlice(row, 0, 3);
            if (key == NULL) {
                goto fail;
            }
            PyObject *id = PyDict_GetItemWithError(ids, key); /* borrowed */
            if (id == NULL) {
                if (!PyErr_Occurred()) {
                    /* KeyError(key), as dict[key] raises it: the tuple as its one argument */
                    PyObject *error = PyTuple_Pack(1, key);
                    if (error != NULL) {
                        PyErr_SetObject(PyExc_KeyError, error);
                        Py_DECREF(error);
                    }
                }
                Py_DECREF(key);
                goto fail;
            }
            Py_DECREF(key);
            Py_INCREF(id);
            PyList_SET_ITEM(values, at++, id);
        }
        for (Py_ssize_t j = first; j < size; j++) {
            PyObject *value = PyTuple_GET_ITEM(row, j);
            /* sqlite3 binds an exact int, float or str at once and a bool through its
             * adapter lookup, with the GIL held; SQLite stores a flag as 1 or 0 anyway */
            if (value == Py_True) {
                value = ONE;
            }
            else if (value == Py_False) {
                value = ZERO;
            }
            Py_INCREF(value);
            PyList_SET_ITEM(values, at++, value);
        }
    }
    return values;

fail:
    /* the slots not filled yet are NULL: list_dealloc skips them */
    Py_DECREF(values);
    return NULL;
}

#define BAR_TS_EVENT 1
#define BAR_OPEN 2
#define BAR_TS_RECV 8
#define BAR_REVISION 10
#define BAR_FIELDS 12
#define SLOT_BYTES 48
#define ROW_BYTES 56

static int
as_int64(PyObject *value, long long *out)
{
    PyObject *number;
    if (PyLong_Check(value)) {
        Py_INCREF(value);
        number = value;
    }
    else if (PyIndex_Check(value)) {
        number = PyNumber_Index(value);
        if (number == NULL) {
            return -1;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError, "a bar time must be an integer, got %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    /* not PyLong_AsLongLong: on CPython 3.11 it converts a value of more than one digit
     * (any nanosecond time) through a byte array, ~30 instructions a digit more */
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(number, &overflow);
    Py_DECREF(number);
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "a bar time does not fit in 64 bits");
        return -1;
    }
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
bar_fields(PyObject *fields)
{
    if (!PyTuple_CheckExact(fields) || PyTuple_GET_SIZE(fields) != BAR_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "fields must be a TradeBar's 12 fields");
        return -1;
    }
    return 0;
}

static int
prices(PyObject *fields, double *values)
{
    for (int k = 0; k < 5; k++) {
        PyObject *value = PyTuple_GET_ITEM(fields, BAR_OPEN + k);
        values[k] = PyFloat_CheckExact(value) ? PyFloat_AS_DOUBLE(value) : PyFloat_AsDouble(value);
        if (values[k] == -1.0 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

/* Where ``width`` bytes go in ``buffer`` (a bytearray named ``name``): ``index`` converted and
 * checked, in ``unit``s (1: a byte offset; the width: a slot number) so that the whole
 * width lies inside. The bar's fields are checked before the index, as the pure twins do.
 * -1 with an error set (TypeError for another buffer or bad fields, IndexError "<what> not
 * allocated"). */
static Py_ssize_t
place_in(PyObject *buffer, const char *name, PyObject *fields, PyObject *index,
         Py_ssize_t unit, Py_ssize_t width, const char *what)
{
    if (!PyByteArray_CheckExact(buffer)) {
        PyErr_Format(PyExc_TypeError, "%s must be a bytearray", name);
        return -1;
    }
    if (bar_fields(fields) < 0) {
        return -1;
    }
    Py_ssize_t at = PyNumber_AsSsize_t(index, PyExc_OverflowError);
    if (at == -1 && PyErr_Occurred()) {
        return -1;
    }
    Py_ssize_t size = PyByteArray_GET_SIZE(buffer);
    if (at < 0 || size < width || at > (size - width) / unit) {
        PyErr_Format(PyExc_IndexError, "%s not allocated", what);
        return -1;
    }
    return at;
}

static PyObject *
pack_bar(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "pack_bar(rows, offset, fields)");
        return NULL;
    }
    PyObject *rows = args[0], *fields = args[2];
    Py_ssize_t offset = place_in(rows, "rows", fields, args[1], 1, ROW_BYTES, "row");
    if (offset < 0) {
        return NULL;
    }
    long long ts_event, ts_recv;
    double values[5];
    if (as_int64(PyTuple_GET_ITEM(fields, BAR_TS_EVENT), &ts_event) < 0
        || as_int64(PyTuple_GET_ITEM(fields, BAR_TS_RECV), &ts_recv) < 0
        || prices(fields, values) < 0) {
        return NULL;
    }
    /* written only once every value converted: a failure leaves the row as it was */
    char *at = PyByteArray_AS_STRING(rows) + offset;
    int64_t first = (int64_t)ts_event, last = (int64_t)ts_recv;
    memcpy(at, &first, 8);
    memcpy(at + 8, values, 40);
    memcpy(at + 48, &last, 8);
    Py_RETURN_NONE;
}

/* array[index] = value for an array("q"): through its buffer, without the array's
 * argument parsing. TypeError for anything else, IndexError outside it. */
static int
set_int64_item(PyObject *array, Py_ssize_t index, long long value)
{
    Py_buffer view;
    if (PyObject_GetBuffer(array, &view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        return -1;
    }
    if (view.itemsize != 8 || view.format == NULL || strcmp(view.format, "q") != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "expected an array('q')");
        return -1;
    }
    if (index < 0 || index >= view.len / 8) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_IndexError, "array assignment index out of range");
        return -1;
    }
    int64_t stored = (int64_t)value;
    memcpy((char *)view.buf + index * 8, &stored, 8);
    PyBuffer_Release(&view);
    return 0;
}

static PyObject *
remember_bar(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "remember_bar(values, opens, slot, fields)");
        return NULL;
    }
    PyObject *values = args[0], *opens = args[1], *fields = args[3];
    Py_ssize_t slot = place_in(values, "values", fields, args[2], SLOT_BYTES, SLOT_BYTES, "slot");
    if (slot < 0) {
        return NULL;
    }
    long long revision, ts_event;
    double packed[5];
    if (as_int64(PyTuple_GET_ITEM(fields, BAR_REVISION), &revision) < 0
        || as_int64(PyTuple_GET_ITEM(fields, BAR_TS_EVENT), &ts_event) < 0
        || prices(fields, packed) < 0) {
        return NULL;
    }
    if (set_int64_item(opens, slot, ts_event) < 0) {  /* first: it may refuse opens */
        return NULL;
    }
    int64_t rev = (int64_t)revision;
    char *at = PyByteArray_AS_STRING(values) + slot * SLOT_BYTES;
    memcpy(at, &rev, 8);
    memcpy(at + 8, packed, 40);
    Py_RETURN_NONE;
}

/* ``value`` as a long long in ``out``; ``overflow`` set (-1 or 1, ``out`` undefined) when it
 * does not fit. -1 with TypeError (``refusal``, then its type) when it is not an int. */
static int
read_int(PyObject *value, const char *refusal, long long *out, int *overflow)
{
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s, got %.100s", refusal, Py_TYPE(value)->tp_name);
        return -1;
    }
    *out = PyLong_AsLongLongAndOverflow(value, overflow);
    if (*out == -1 && !*overflow && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

static PyObject *
put_int64(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "put_int64(values, index, value)");
        return NULL;
    }
    PyObject *values = args[0], *value = args[2];
    Py_ssize_t index = PyNumber_AsSsize_t(args[1], PyExc_IndexError);
    if (index == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyList_CheckExact(values)) {
        Py_INCREF(value);
        if (PyList_SetItem(values, index, value) < 0) {  /* steals value, even on error */
            return NULL;
        }
        Py_RETURN_NONE;
    }
    int overflow;
    long long number;
    if (read_int(value, "an integer is required", &number, &overflow) < 0) {
        return NULL;
    }
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "value does not fit in 64 bits");
        return NULL;
    }
    if (set_int64_item(values, index, number) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ Latch */

/* Latch(): the ring buffer's lock, threading.Lock's acquire(), release() and with. Every
 * field is read and written holding the GIL, so taking a free latch and giving it back when
 * no thread waits are a flag each, with no call into the OS (CPython 3.11's
 * PyThread_acquire_lock reads the monotonic clock even when it does not wait: ~1% of
 * figure 2's time, for a lock no other thread ever asked for). A thread that finds it held
 * waits, without the GIL, on ``baton``: an OS lock kept locked, which a release unlocks only
 * when threads wait, handing the latch over (``locked`` stays 1, ``handing`` is set); the
 * waiter that takes the baton holds the latch. A waiter interrupted by a signal handler that
 * raises leaves the baton for the next one; an acquire finds it at once. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock baton;
    int locked;   /* held, or being handed over */
    int handing;  /* the baton is unlocked: the next waiter to take it holds the latch */
    int waiters;  /* threads waiting for the baton */
} LatchObject;

static PyObject *
latch_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Latch() takes no arguments");
        return NULL;
    }
    LatchObject *self = (LatchObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->baton = PyThread_allocate_lock();
    if (self->baton == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate a lock");
        return NULL;
    }
    PyThread_acquire_lock(self->baton, WAIT_LOCK); /* new: taken at once */
    return (PyObject *)self;
}

static void
latch_dealloc(LatchObject *self)
{
    if (self->baton != NULL) { /* locked (or handed over and never taken): free it unlocked */
        PyThread_acquire_lock(self->baton, NOWAIT_LOCK);
        PyThread_release_lock(self->baton);
        PyThread_free_lock(self->baton);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
latch_acquire(LatchObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->locked) {
        self->locked = 1;
        Py_RETURN_TRUE;
    }
    self->waiters++;
    PyLockStatus status;
    do {
        Py_BEGIN_ALLOW_THREADS
        status = PyThread_acquire_lock_timed(self->baton, -1, 1);
        Py_END_ALLOW_THREADS
        if (status == PY_LOCK_INTR && Py_MakePendingCalls() < 0) {
            self->waiters--;
            return NULL; /* a signal handler raised: not acquired */
        }
    } while (status != PY_LOCK_ACQUIRED);
    self->waiters--;
    self->handing = 0; /* handed over: ``locked`` stayed 1, the latch is ours */
    Py_RETURN_TRUE;
}

static PyObject *
latch_release(LatchObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->locked || self->handing) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    if (self->waiters > 0) {
        self->handing = 1;
        PyThread_release_lock(self->baton);
    }
    else {
        self->locked = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *
latch_exit(LatchObject *self, PyObject *Py_UNUSED(args))
{
    return latch_release(self, NULL);
}

static PyObject *
latch_is_locked(LatchObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->locked);
}

static PyMethodDef latch_methods[] = {
    {"acquire", (PyCFunction)latch_acquire, METH_NOARGS,
     "acquire(): wait until the latch is free and take it; returns True."},
    {"release", (PyCFunction)latch_release, METH_NOARGS,
     "release(): free the latch (RuntimeError when it is not held)."},
    {"locked", (PyCFunction)latch_is_locked, METH_NOARGS, "locked(): whether it is held."},
    {"__enter__", (PyCFunction)latch_acquire, METH_NOARGS, "acquire()"},
    {"__exit__", (PyCFunction)latch_exit, METH_VARARGS, "release()"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lean_data._rows.Latch",
    .tp_basicsize = sizeof(LatchObject),
    .tp_dealloc = (destructor)latch_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The ring buffer's lock: threading.Lock's acquire(), release() and with, "
              "without argument parsing.",
    .tp_methods = latch_methods,
    .tp_new = latch_new,
};

/* ------------------------------------------------------------------ Samples */

/* Samples(size): the last ``size`` ints appended, stored as int64 values in a ring (a value
 * beyond int64 is clamped to +-(2**63 - 1)); the metrics' latency samples. A ring of int
 * objects frees, for every new sample once full, one allocated ``size`` samples before:
 * memory long out of the caches. Its pure twin is lean_data.engine.metrics._Samples. */
typedef struct {
    PyObject_HEAD
    int64_t *values;
    Py_ssize_t size;
    Py_ssize_t next;  /* the slot the next sample goes to */
    Py_ssize_t kept;  /* samples held, at most size */
} SamplesObject;

static PyObject *
samples_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t size;
    static char *names[] = {"size", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n:Samples", names, &size)) {
        return NULL;
    }
    if (size < 1) {
        PyErr_Format(PyExc_ValueError, "Samples: size must be >= 1, got %zd", size);
        return NULL;
    }
    SamplesObject *self = (SamplesObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->values = PyMem_Calloc((size_t)size, sizeof(int64_t));
    if (self->values == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->size = size;
    return (PyObject *)self;
}

static void
samples_dealloc(SamplesObject *self)
{
    PyMem_Free(self->values);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
samples_append(SamplesObject *self, PyObject *value)
{
    int overflow;
    long long number;
    if (read_int(value, "Samples.append() takes an int", &number, &overflow) < 0) {
        return NULL;
    }
    if (overflow || number == LLONG_MIN) {  /* clamped to +-(2**63 - 1) */
        number = overflow > 0 ? LLONG_MAX : -LLONG_MAX;
    }
    Py_ssize_t i = self->next;
    self->values[i] = (int64_t)number;
    self->next = i + 1 < self->size ? i + 1 : 0;
    if (self->kept < self->size) {
        self->kept++;
    }
    Py_RETURN_NONE;
}

static PyObject *
samples_values(SamplesObject *self, PyObject *unused)
{
    PyObject *out = PyList_New(self->kept);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t start = self->kept < self->size ? 0 : self->next;
    for (Py_ssize_t k = 0; k < self->kept; k++) {
        Py_ssize_t i = start + k < self->size ? start + k : start + k - self->size;
        PyObject *number = PyLong_FromLongLong(self->values[i]);
        if (number == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, k, number);
    }
    return out;
}

static Py_ssize_t
samples_len(SamplesObject *self)
{
    return self->kept;
}

static PyObject *
samples_get_size(SamplesObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->size);
}

static PyMethodDef samples_methods[] = {
    {"append", (PyCFunction)samples_append, METH_O,
     "append(value, /): keep the int value (clamped to int64); the oldest goes when full."},
    {"values", (PyCFunction)samples_values, METH_NOARGS,
     "values(): the samples kept, oldest first, as a list of ints."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef samples_getset[] = {
    {"size", (getter)samples_get_size, NULL, "the capacity given at construction", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods samples_sequence = {
    .sq_length = (lenfunc)samples_len,
};

static PyTypeObject SamplesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lean_data._rows.Samples",
    .tp_basicsize = sizeof(SamplesObject),
    .tp_dealloc = (destructor)samples_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Samples(size): the last size ints appended, as int64 values in a ring.",
    .tp_methods = samples_methods,
    .tp_getset = samples_getset,
    .tp_as_sequence = &samples_sequence,
    .tp_new = samples_new,
};

/* Stop the collector tracking ``value`` when it is a tuple whose items can hold no
 * reference cycle (none is a container the collector tracks, CPython's own test in
 * _PyTuple_MaybeUntrack), its tuples first; 1 when ``value`` is untracked now. */
static int
untrack_leaves(PyObject *value)
{
    if (!PyObject_IS_GC(value)) {
        return 1;
    }
    if (!PyTuple_CheckExact(value)) {
        return 0;
    }
    if (!PyObject_GC_IsTracked(value)) {
        return 1;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(value);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (!untrack_leaves(PyTuple_GET_ITEM(value, i))) {
            return 0;
        }
    }
    PyObject_GC_UnTrack(value);
    return 1;
}

/* leaf(value): ``value``, and when it is a tuple of leaves (tuples of leaves included) the
 * collector stops tracking it now instead of at its first collection. */
static PyObject *
leaf(PyObject *module, PyObject *value)
{
    untrack_leaves(value);
    return Py_NewRef(value);
}

/* bar_row(fields, feed, quality, ts_recv): the ``bars`` row the store queues for a trade bar
 * (lean_data.storage.rows.bar_row_of, its pure twin, documents it): ``fields`` the bar's
 * slots as lean_data.slots.BAR reads them (symbol, ts_event, open, high, low, close, volume,
 * resolution, ts_recv, closed, revision, backfilled), ``quality`` the (score, level name,
 * reasons) triple of rows.quality_fields. The row is made untracked by the collector when
 * none of its values is a container it tracks, as leaf() would leave it, without a second
 * pass over the values: figure 4's event loop spent ~3% building the row in compiled code
 * and ~1.5% untracking it. A resolution without ``name`` raises AttributeError, as the pure
 * twin does. */
#define BAR_SYMBOL 0
#define BAR_RESOLUTION 7
#define BAR_CLOSED 9
#define BAR_ROW_WIDTH 16
static PyObject *NAME; /* "name", interned */

static PyObject *
bar_row(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != BAR_FIELDS
        || !PyTuple_CheckExact(args[2]) || PyTuple_GET_SIZE(args[2]) != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "bar_row(fields: a TradeBar's 12 fields, feed, quality: a 3-tuple, "
                        "ts_recv)");
        return NULL;
    }
    PyObject *fields = args[0], *quality = args[2];
    PyObject *name = PyObject_GetAttr(PyTuple_GET_ITEM(fields, BAR_RESOLUTION), NAME);
    if (name == NULL) {
        return NULL;
    }
    PyObject *row = PyTuple_New(BAR_ROW_WIDTH);
    if (row == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    PyObject *values[BAR_ROW_WIDTH] = {
        args[1], PyTuple_GET_ITEM(fields, BAR_SYMBOL), name,
        PyTuple_GET_ITEM(fields, BAR_TS_EVENT), PyTuple_GET_ITEM(fields, BAR_OPEN),
        PyTuple_GET_ITEM(fields, BAR_OPEN + 1), PyTuple_GET_ITEM(fields, BAR_OPEN + 2),
        PyTuple_GET_ITEM(fields, BAR_OPEN + 3), PyTuple_GET_ITEM(fields, BAR_OPEN + 4),
        PyTuple_GET_ITEM(fields, BAR_CLOSED), PyTuple_GET_ITEM(fields, BAR_REVISION),
        PyTuple_GET_ITEM(fields, BAR_CLOSED + 2), PyTuple_GET_ITEM(quality, 0),
        PyTuple_GET_ITEM(quality, 1), PyTuple_GET_ITEM(quality, 2), args[3],
    };
    int leaves = 1;
    for (Py_ssize_t k = 0; k < BAR_ROW_WIDTH; k++) {
        PyObject *value = values[k];
        leaves &= !PyObject_IS_GC(value);
        PyTuple_SET_ITEM(row, k, k == 2 ? value : Py_NewRef(value)); /* the name: ours */
    }
    if (leaves) {
        PyObject_GC_UnTrack(row);
    }
    return row;
}

/* drain(popleft, appendleft, run, available, groups, limit): the storage writer's take
 * (lean_data.inbox.drain, its pure twin, documents the contract): up to ``limit`` rows of
 * (table, row) pairs popped by ``popleft()``, at most ``available`` calls, each row appended
 * to groups[table]; a pair whose row is of type ``run`` (lean_data.inbox.Batch: a run of
 * rows of one table) gives the rows of its ``items`` list, or when they go beyond ``limit``
 * its first ones, the rest put back with ``appendleft(pair)``; a pair with a negative table
 * (a control entry) ends it and comes back. Returns (rows, control or None). The compiled
 * loop it replaces spent ~700 instructions a row, in Inbox.take and the unboxing of each
 * table. A pair that is not a 2-tuple with an int table raises TypeError (it is popped: the
 * pure twin raises there too), a table beyond ``groups`` IndexError, a group that is no
 * list or a run without a list TypeError. */
static PyObject *ITEMS; /* "items", interned */

static PyObject *
drain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "drain() takes popleft, appendleft, run, available, groups, limit");
        return NULL;
    }
    PyObject *popleft = args[0], *appendleft = args[1], *run = args[2], *groups = args[4];
    Py_ssize_t available = PyLong_AsSsize_t(args[3]);
    if (available == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[5]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyList_Check(groups)) {
        PyErr_SetString(PyExc_TypeError, "drain() needs a list of lists");
        return NULL;
    }
    Py_ssize_t taken = 0, calls = 0;
    PyObject *control = Py_None;
    while (taken < limit && calls < available) {
        PyObject *entry = PyObject_CallNoArgs(popleft);
        calls++;
        if (entry == NULL) {
            return NULL;
        }
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2
            || !PyLong_Check(PyTuple_GET_ITEM(entry, 0))) {
            Py_DECREF(entry);
            PyErr_SetString(PyExc_TypeError, "drain() takes (table, row) pairs");
            return NULL;
        }
        Py_ssize_t table = PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 0));
        if (table == -1 && PyErr_Occurred()) {
            Py_DECREF(entry);
            return NULL;
        }
        if (table < 0) {
            control = entry;  /* the reference popleft gave */
            break;
        }
        if (table >= PyList_GET_SIZE(groups)) {
            Py_DECREF(entry);
            PyErr_SetString(PyExc_IndexError, "drain(): table out of range");
            return NULL;
        }
        PyObject *group = PyList_GET_ITEM(groups, table);
        if (!PyList_Check(group)) {
            Py_DECREF(entry);
            PyErr_SetString(PyExc_TypeError, "drain() needs a list of lists");
            return NULL;
        }
        PyObject *row = PyTuple_GET_ITEM(entry, 1);
        if ((PyObject *)Py_TYPE(row) != run) {
            int failed = PyList_Append(group, row);
            Py_DECREF(entry);
            if (failed < 0) {
                return NULL;
            }
            taken++;
            continue;
        }
        PyObject *rows = PyObject_GetAttr(row, ITEMS);
        if (rows == NULL || !PyList_Check(rows)) {
            Py_XDECREF(rows);
            Py_DECREF(entry);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "drain() needs a run of a list");
            }
            return NULL;
        }
        Py_ssize_t count = PyList_GET_SIZE(rows), room = limit - taken;
        Py_ssize_t moved = count > room ? room : count;
        Py_ssize_t end = PyList_GET_SIZE(group);
        /* group[end:end] = rows[:moved]; then del rows[:moved] when the run stays queued */
        PyObject *head = moved == count ? Py_NewRef(rows) : PyList_GetSlice(rows, 0, moved);
        int failed = head == NULL || PyList_SetSlice(group, end, end, head) < 0;
        Py_XDECREF(head);
        if (!failed && moved < count) {
            failed = PyList_SetSlice(rows, 0, moved, NULL) < 0;
            if (!failed) {
                PyObject *back = PyObject_CallOneArg(appendleft, entry);
                failed = back == NULL;
                Py_XDECREF(back);
            }
        }
        Py_DECREF(rows);
        Py_DECREF(entry);
        if (failed) {
            return NULL;
        }
        taken += moved;
    }
    PyObject *result = Py_BuildValue("(nO)", taken, control);
    if (control != Py_None) {
        Py_DECREF(control);
    }
    return result;
}

/* ------------------------------------------------------------------ coarse_clock */

/* time.monotonic and time.time_ns, for a system without the clocks read here */
static PyObject *FINE_CLOCK, *FINE_WALL;

/* coarse_clock(): monotonic seconds as a float, from the kernel's last tick where the
 * system keeps one (Linux's CLOCK_MONOTONIC_COARSE: no time-stamp counter read, ~4 ms
 * resolution, the same clock as time.monotonic's), else time.monotonic(). The metrics'
 * default clock (lean_data.engine.metrics), read for every delivered item to find its
 * second: ~30 ns a read less than time.monotonic() here, ~1% of figure 2's time. */
static PyObject *
coarse_clock(PyObject *module, PyObject *unused)
{
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &now) == 0) {
        return PyFloat_FromDouble((double)now.tv_sec + (double)now.tv_nsec * 1e-9);
    }
#endif
    return PyObject_CallNoArgs(FINE_CLOCK);
}

/* time_ns(): time.time_ns(), the wall clock in ns since the epoch as an int, from
 * CLOCK_REALTIME as time.time_ns reads it on Linux, without its conversions and range
 * checks (~195 instructions a call against ~60). The feeds' receipt time and the engine's
 * delivery latency read it for every socket read and every delivered item. */
static PyObject *
wall_ns(PyObject *module, PyObject *unused)
{
#ifdef CLOCK_REALTIME
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) == 0) {
        return PyLong_FromLongLong((long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    }
#endif
    return PyObject_CallNoArgs(FINE_WALL);
}

/* elapsed_ns(since): time_ns() - since, the nanoseconds since ``since`` on the wall clock:
 * the pipeline's delivery latency of a tick, from its event or receipt time. One call,
 * with no int made for the clock's reading and none unboxed. ``since`` other than an int
 * of 64 bits (or a difference beyond them) is subtracted from time_ns() as Python does. */
static PyObject *
elapsed_ns(PyObject *module, PyObject *since)
{
#ifdef CLOCK_REALTIME
    if (PyLong_CheckExact(since)) {
        int overflow = 0;
        long long start = PyLong_AsLongLongAndOverflow(since, &overflow);
        struct timespec now;
        long long difference;
        if (!overflow && !(start == -1 && PyErr_Occurred())
            && clock_gettime(CLOCK_REALTIME, &now) == 0
            && !__builtin_sub_overflow((long long)now.tv_sec * 1000000000LL + now.tv_nsec,
                                       start, &difference)) {
            return PyLong_FromLongLong(difference);
        }
    }
#endif
    PyObject *now = wall_ns(module, NULL);
    if (now == NULL) {
        return NULL;
    }
    PyObject *difference = PyNumber_Subtract(now, since);
    Py_DECREF(now);
    return difference;
}

/* ------------------------------------------------------------------ ring_put */

/* Ask for the first ``lines`` cache lines of ``item``, from two pointers before it (a
 * collected object's header in CPython 3.11 and 3.12; reading the object to tell would wait
 * for the line this asks for, and a fetch of a line not needed costs nothing more). */
static inline void
fetch_object(PyObject *item, int lines)
{
    char *start = (char *)item - 2 * sizeof(void *);
    for (int k = 0; k < lines; k++) {
        __builtin_prefetch(start + 64 * k, 1, 3);
    }
}

/* Ask for the object each slot of ``item``'s class (and its bases') holds: what freeing
 * ``item`` reads and writes (its reference count, then its own free). */
static inline void
fetch_fields(PyObject *item)
{
    for (PyTypeObject *type = Py_TYPE(item); type != NULL; type = type->tp_base) {
        if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_members == NULL) {
            break;
        }
        for (PyMemberDef *member = type->tp_members; member->name != NULL; member++) {
            if (member->type == T_OBJECT_EX || member->type == T_OBJECT) {
                PyObject *value = *(PyObject **)((char *)item + member->offset);
                if (value != NULL) {
                    __builtin_prefetch(value, 1, 3);
                }
            }
        }
    }
}

/* ring_put(slots, index, item): ``slots[index] = item`` for a list (its pure twin in
 * lean_data.series.buffer), TypeError for anything else, IndexError for no slot ``index``.
 * The ring buffer stores every item this way; once its ring is full, each store frees the
 * item it overwrites, kept since the ring last came round and long out of the caches (a
 * tick: its object and its price, size, time and trade id objects, each a wait of a few
 * hundred cycles when freed). So the items the next two stores overwrite are asked for
 * first: the one after ``index`` (the objects its slots hold; its own lines were asked for
 * by the store before) when the ring holds its only reference, and the one after that (its
 * own lines). Figure 2 (7 symbols of aggTrades, 10,000 ticks each): the frees' share of the
 * engine's time fell from ~5.5% to ~2.6% (perf); a ring that keeps nothing reads ~7% faster. */
static PyObject *
ring_put(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "ring_put() takes slots, index, item");
        return NULL;
    }
    PyObject *slots = args[0];
    if (!PyList_Check(slots)) {
        PyErr_SetString(PyExc_TypeError, "ring_put() needs a list");
        return NULL;
    }
    Py_ssize_t index = PyLong_AsSsize_t(args[1]);
    if (index == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t size = PyList_GET_SIZE(slots);
    if (index < 0) {  /* from the end, as a list counts */
        index += size;
    }
    if (index < 0 || index >= size) {
        PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
        return NULL;
    }
    if (size > 2) {
        Py_ssize_t next = index + 1 < size ? index + 1 : 0;
        Py_ssize_t after = next + 1 < size ? next + 1 : 0;
        PyObject *soon = PyList_GET_ITEM(slots, next);
        if (soon != NULL && Py_REFCNT(soon) == 1) {  /* freed by that store */
            fetch_fields(soon);
        }
        PyObject *later = PyList_GET_ITEM(slots, after);
        if (later != NULL) {
            fetch_object(later, 3);
        }
    }
    PyObject *old = PyList_GET_ITEM(slots, index);
    PyList_SET_ITEM(slots, index, Py_NewRef(args[2]));
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"drain", (PyCFunction)(void (*)(void))drain, METH_FASTCALL,
     "drain(popleft, appendleft, run, available, groups, limit, /): the storage writer's "
     "take of queued rows."},
    {"bar_row", (PyCFunction)(void (*)(void))bar_row, METH_FASTCALL,
     "bar_row(fields, feed, quality, ts_recv, /): a trade bar's bars row, untracked when it "
     "holds only plain values."},
    {"leaf", leaf, METH_O, "leaf(value, /): value, untracked by the collector when a tuple of leaves (and its tuples)."},
    {"coarse_clock", coarse_clock, METH_NOARGS,
     "coarse_clock(): monotonic seconds, to the kernel's last tick where it keeps one."},
    {"time_ns", wall_ns, METH_NOARGS, "time_ns(): time.time_ns(), read with less around it."},
    {"elapsed_ns", elapsed_ns, METH_O, "elapsed_ns(since, /): time_ns() - since."},
    {"ring_put", (PyCFunction)(void (*)(void))ring_put, METH_FASTCALL,
     "ring_put(slots, index, item, /): slots[index] = item, the next stores' items fetched."},
    {"put_int64", (PyCFunction)(void (*)(void))put_int64, METH_FASTCALL,
     "put_int64(values, index, value, /): values[index] = value for an array('q') or list."},
    {"remember_bar", (PyCFunction)(void (*)(void))remember_bar, METH_FASTCALL,
     "remember_bar(values, opens, slot, fields, /): continuity's slot of an in-order bar."},
    {"pack_bar", (PyCFunction)(void (*)(void))pack_bar, METH_FASTCALL,
     "pack_bar(rows, offset, fields, /): a TradeBar's ring-buffer row, written in place."},
    {"statement_values", (PyCFunction)(void (*)(void))statement_values, METH_FASTCALL,
     "statement_values(rows, start, end, ids=None, /): the parameters of rows[start:end]."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "lean_data._rows",
    "Rows in one C pass: statement parameters (lean_data.storage.rows) and ring-buffer rows "
    "(lean_data.series.buffer).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__rows(void)
{
    ZERO = PyLong_FromLong(0);
    ONE = PyLong_FromLong(1);
    ITEMS = PyUnicode_InternFromString("items");
    NAME = PyUnicode_InternFromString("name");
    if (ZERO == NULL || ONE == NULL || ITEMS == NULL || NAME == NULL) {
        return NULL;
    }
    PyObject *time_module = PyImport_ImportModule("time");
    if (time_module == NULL) {
        return NULL;
    }
    FINE_CLOCK = PyObject_GetAttrString(time_module, "monotonic");
    FINE_WALL = PyObject_GetAttrString(time_module, "time_ns");
    Py_DECREF(time_module);
    if (FINE_CLOCK == NULL || FINE_WALL == NULL) {
        return NULL;
    }
    if (PyType_Ready(&LatchType) < 0 || PyType_Ready(&SamplesType) < 0) {
        return NULL;
    }
    PyObject *created = PyModule_Create(&module);
    if (created == NULL) {
        return NULL;
    }
    Py_INCREF(&LatchType);
    if (PyModule_AddObject(created, "Latch", (PyObject *)&LatchType) < 0) {
        Py_DECREF(&LatchType);
        Py_DECREF(created);
        return NULL;
    }
    Py_INCREF(&SamplesType);
    if (PyModule_AddObject(created, "Samples", (PyObject *)&SamplesType) < 0) {
        Py_DECREF(&SamplesType);
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
