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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

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

static PyMethodDef module_methods[] = {
    {"mark_seen", (PyCFunction)(void (*)(void))mark_seen, METH_FASTCALL,
     "mark_seen(items, last_seen, now, readers): last_seen[symbol] = now for the leading "
     "items it can read; the index of the first it did not take."},
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
