/* lean_data._rows: the parameters of a multi-row statement, flattened in one C pass.
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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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

static PyMethodDef methods[] = {
    {"statement_values", (PyCFunction)(void (*)(void))statement_values, METH_FASTCALL,
     "statement_values(rows, start, end, ids=None, /): the parameters of rows[start:end]."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "lean_data._rows",
    "The parameters of a multi-row statement in one C pass (see lean_data.storage.rows).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__rows(void)
{
    ZERO = PyLong_FromLong(0);
    ONE = PyLong_FromLong(1);
    if (ZERO == NULL || ONE == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
