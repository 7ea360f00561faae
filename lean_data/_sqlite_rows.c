/* lean_data._sqlite_rows: insert rows on a sqlite3 connection without holding the GIL.
 *
 * write(connection, rows, ids, block_sql, block_rows, row_sql) inserts ``rows`` (a list of
 * tuples of one width, as the store queues them) on an open sqlite3.Connection, in its
 * transaction, with the parameters lean_data.storage.rows.statement_values would give:
 * flags as 1 and 0 and, with ``ids`` (a dict), each row's first three values (a trade bar's
 * feed, symbol and resolution) as the one series id they map to. ``block_sql`` is the
 * INSERT of ``block_rows`` rows (schema.write_sql), ``row_sql`` the same INSERT of one row;
 * the blocks run while ``block_rows`` rows are left, the one-row statement for the rest.
 * That is what sqlite3 does with the flattened list in multi-row statements, but sqlite3
 * binds every parameter holding the GIL (~4,600 instructions a bar row, callgrind), time
 * in which the event loop cannot run, and the list itself is built on the loop. Here the
 * rows are read into C in aiosqlite's thread holding the GIL (a type test a value, a series
 * lookup by identity), which is then released once for preparing, binding and stepping
 * everything. The statements are prepared on every call, as sqlite3's statement cache is
 * out of reach: a 1,000-row statement costs ~4 us a row to prepare, a 32-row one ~0.1 us.
 *
 * A series not in ``ids`` raises KeyError(key) and an unhashable one TypeError, as
 * statement_values does, before anything is written.
 *
 * It takes the common case only and says so: it returns False, having done nothing, when a
 * value is not a flag or an exact int (64 bits), float, str (valid UTF-8), bytes or None,
 * when a row is not a tuple of the first row's width, when a statement is not one writing
 * statement of the parameters it should have, or when the connection is not one it can
 * reach (see usable()); the caller then has sqlite3 bind the rows, which binds (and
 * refuses) values as it always did. It returns True when the rows were inserted. SQLite's
 * errors raise the exception sqlite3 raises for them (IntegrityError for a constraint,
 * OperationalError for a locked or full database, ...), with ``sqlite_errorcode`` and
 * ``sqlite_errorname`` set as sqlite3 sets them; the statement that failed is undone, the
 * transaction is the caller's to roll back (as after sqlite3's execute).
 *
 * Like sqlite3's own execute of a DML statement, it opens a deferred transaction first when
 * none is open (the caller commits or rolls back with the connection).
 *
 * The connection's sqlite3* handle is the first field of CPython's pysqlite_Connection
 * (``PyObject_HEAD; sqlite3 *db;``, read in the sources of 3.11 to 3.13; it has been so
 * since the module joined CPython). usable() is False on other versions, and unless the
 * sqlite3 module and this one call the same SQLite library (the same loaded copy, not only
 * the same version); then the handle is never touched.
 *
 * Call it only on the thread that owns the connection (aiosqlite's worker thread).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
} ConnectionHead;

typedef struct {
    int kind; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL */
    sqlite3_int64 i;
    double d;
    const char *p;
    Py_ssize_t n;
} Param;

static PyTypeObject *CONNECTION_TYPE; /* sqlite3.Connection */
static PyObject *SQLITE3;             /* the sqlite3 module, for its exception classes */
static int USABLE = -1;               /* -1 unknown, 0 no, 1 yes */

static int
same_library(void)
{
#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030F0000
    return 0; /* a CPython whose pysqlite_Connection layout was not read */
#endif
    /* The sqlite3_libversion the sqlite3 module's extension resolves to must be ours: its
     * handle searches the extension and the libraries it loaded, so a statically linked
     * copy (hidden or not) gives NULL or another address. */
    PyObject *ext = PyImport_ImportModule("_sqlite3");
    if (ext == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *file = PyObject_GetAttrString(ext, "__file__");
    Py_DECREF(ext);
    if (file == NULL || !PyUnicode_Check(file)) {
        Py_XDECREF(file);
        PyErr_Clear();
        return 0;
    }
    PyObject *encoded = PyUnicode_EncodeFSDefault(file);
    Py_DECREF(file);
    if (encoded == NULL) {
        PyErr_Clear();
        return 0;
    }
    void *handle = dlopen(PyBytes_AS_STRING(encoded), RTLD_LAZY | RTLD_NOLOAD);
    Py_DECREF(encoded);
    if (handle == NULL) {
        return 0;
    }
    void *theirs = dlsym(handle, "sqlite3_libversion");
    dlclose(handle);
    return theirs != NULL && theirs == (void *)&sqlite3_libversion;
}

static PyObject *
usable(PyObject *module, PyObject *unused)
{
    if (USABLE < 0) {
        USABLE = same_library();
    }
    return PyBool_FromLong(USABLE);
}

static const char *
primary_name(int code)
{
    switch (code & 0xff) {
    case SQLITE_ERROR: return "SQLITE_ERROR";
    case SQLITE_INTERNAL: return "SQLITE_INTERNAL";
    case SQLITE_PERM: return "SQLITE_PERM";
    case SQLITE_ABORT: return "SQLITE_ABORT";
    case SQLITE_BUSY: return "SQLITE_BUSY";
    case SQLITE_LOCKED: return "SQLITE_LOCKED";
    case SQLITE_NOMEM: return "SQLITE_NOMEM";
    case SQLITE_READONLY: return "SQLITE_READONLY";
    case SQLITE_INTERRUPT: return "SQLITE_INTERRUPT";
    case SQLITE_IOERR: return "SQLITE_IOERR";
    case SQLITE_CORRUPT: return "SQLITE_CORRUPT";
    case SQLITE_NOTFOUND: return "SQLITE_NOTFOUND";
    case SQLITE_FULL: return "SQLITE_FULL";
    case SQLITE_CANTOPEN: return "SQLITE_CANTOPEN";
    case SQLITE_PROTOCOL: return "SQLITE_PROTOCOL";
    case SQLITE_EMPTY: return "SQLITE_EMPTY";
    case SQLITE_SCHEMA: return "SQLITE_SCHEMA";
    case SQLITE_TOOBIG: return "SQLITE_TOOBIG";
    case SQLITE_CONSTRAINT: return "SQLITE_CONSTRAINT";
    case SQLITE_MISMATCH: return "SQLITE_MISMATCH";
    case SQLITE_MISUSE: return "SQLITE_MISUSE";
    case SQLITE_NOLFS: return "SQLITE_NOLFS";
    case SQLITE_AUTH: return "SQLITE_AUTH";
    case SQLITE_FORMAT: return "SQLITE_FORMAT";
    case SQLITE_RANGE: return "SQLITE_RANGE";
    case SQLITE_NOTADB: return "SQLITE_NOTADB";
    default: return "SQLITE_UNKNOWN";
    }
}

static const char *
exception_name(int code)
{
    /* CPython's _pysqlite_seterror */
    switch (code & 0xff) {
    case SQLITE_INTERNAL:
    case SQLITE_NOTFOUND: return "InternalError";
    case SQLITE_ERROR:
    case SQLITE_PERM:
    case SQLITE_ABORT:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_INTERRUPT:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_EMPTY:
    case SQLITE_SCHEMA: return "OperationalError";
    case SQLITE_CORRUPT: return "DatabaseError";
    case SQLITE_TOOBIG: return "DataError";
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH: return "IntegrityError";
    case SQLITE_MISUSE:
    case SQLITE_RANGE: return "InterfaceError";
    default: return "DatabaseError";
    }
}

/* The name sqlite3 gives ``code``: its module constant of that value whose name extends
 * the primary code's (SQLITE_CONSTRAINT_NOTNULL), else the primary code's name. */
static PyObject *
error_name(int code)
{
    const char *primary = primary_name(code);
    if (code > 0xff) {
        PyObject *names = PyModule_GetDict(SQLITE3); /* borrowed */
        PyObject *key, *value;
        Py_ssize_t at = 0;
        size_t length = strlen(primary);
        while (names != NULL && PyDict_Next(names, &at, &key, &value)) {
            const char *text = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
            if (text == NULL) {
                PyErr_Clear();
                continue;
            }
            if (strncmp(text, primary, length) == 0 && text[length] == '_' &&
                PyLong_CheckExact(value) && PyLong_AsLong(value) == code) {
                return Py_NewRef(key);
            }
        }
    }
    return PyUnicode_FromString(primary);
}

static PyObject *
raise_sqlite(int code, const char *message)
{
    if ((code & 0xff) == SQLITE_NOMEM) {
        return PyErr_NoMemory();
    }
    PyObject *cls = PyObject_GetAttrString(SQLITE3, exception_name(code));
    if (cls == NULL) {
        return NULL;
    }
    PyObject *exc = PyObject_CallFunction(cls, "s", message);
    Py_DECREF(cls);
    if (exc == NULL) {
        return NULL;
    }
    PyObject *number = PyLong_FromLong(code);
    PyObject *name = error_name(code);
    if (number == NULL || name == NULL ||
        PyObject_SetAttrString(exc, "sqlite_errorcode", number) < 0 ||
        PyObject_SetAttrString(exc, "sqlite_errorname", name) < 0) {
        Py_XDECREF(number);
        Py_XDECREF(name);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(number);
    Py_DECREF(name);
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* Read one value into ``p``; 0 when it is not of a kind bound here. */
static int
read_param(PyObject *value, Param *p)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyLong_Type) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        p->kind = SQLITE_INTEGER;
        p->i = (sqlite3_int64)v;
        return 1;
    }
    if (type == &PyFloat_Type) {
        p->kind = SQLITE_FLOAT;
        p->d = PyFloat_AS_DOUBLE(value);
        return 1;
    }
    if (type == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *text = PyUnicode_AsUTF8AndSize(value, &n);
        if (text == NULL) { /* a lone surrogate */
            PyErr_Clear();
            return 0;
        }
        p->kind = SQLITE_TEXT;
        p->p = text;
        p->n = n;
        return 1;
    }
    if (value == Py_None) {
        p->kind = SQLITE_NULL;
        return 1;
    }
    if (type == &PyBytes_Type) {
        p->kind = SQLITE_BLOB;
        p->p = PyBytes_AS_STRING(value);
        p->n = PyBytes_GET_SIZE(value);
        return 1;
    }
    return 0;
}

static int
bind_all(sqlite3_stmt *stmt, const Param *params, Py_ssize_t count)
{
    for (Py_ssize_t k = 0; k < count; k++) {
        const Param *p = &params[k];
        int index = (int)k + 1;
        int rc;
        switch (p->kind) {
        case SQLITE_INTEGER: rc = sqlite3_bind_int64(stmt, index, p->i); break;
        case SQLITE_FLOAT: rc = sqlite3_bind_double(stmt, index, p->d); break;
        case SQLITE_TEXT: rc = sqlite3_bind_text64(stmt, index, p->p, (sqlite3_uint64)p->n,
                                                   SQLITE_STATIC, SQLITE_UTF8); break;
        case SQLITE_BLOB: rc = sqlite3_bind_blob64(stmt, index, p->p, (sqlite3_uint64)p->n,
                                                   SQLITE_STATIC); break;
        default: rc = sqlite3_bind_null(stmt, index); break;
        }
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    return SQLITE_OK;
}

/* A small map from a series' three texts, by identity, to its id: the rows of one batch
 * share a few series and their text objects. */
#define SEEN 16
typedef struct {
    PyObject *feed, *symbol, *resolution; /* borrowed: the rows hold them for the call */
    sqlite3_int64 id;
} Seen;

/* The series id of ``row`` (its first three values) in ``ids``: 1, or 0 when the id is no
 * int of 64 bits (declined), or -1 with KeyError(key) as ``ids[key]`` raises it, or the
 * lookup's own error (TypeError for an unhashable value). */
static int
series_id(PyObject *ids, PyObject *row, Seen *seen, int *known, sqlite3_int64 *id)
{
    PyObject *feed = PyTuple_GET_ITEM(row, 0), *symbol = PyTuple_GET_ITEM(row, 1),
             *resolution = PyTuple_GET_ITEM(row, 2);
    for (int k = 0; k < *known; k++) {
        if (seen[k].symbol == symbol && seen[k].feed == feed && seen[k].resolution == resolution) {
            *id = seen[k].id;
            return 1;
        }
    }
    PyObject *key = PyTuple_Pack(3, feed, symbol, resolution);
    if (key == NULL) {
        return -1;
    }
    PyObject *found = PyObject_GetItem(ids, key); /* KeyError(key) as ids[key] raises it */
    Py_DECREF(key);
    if (found == NULL) {
        return -1;
    }
    Param p;
    int usable_id = PyLong_CheckExact(found) && read_param(found, &p);
    Py_DECREF(found);
    if (!usable_id) {
        return 0;
    }
    *id = p.i;
    if (*known < SEEN) {
        seen[*known] = (Seen){feed, symbol, resolution, p.i};
        *known += 1;
    }
    return 1;
}

/* Read ``rows`` (a list of tuples of one width) into ``params``, flags as 1 and 0, with
 * ``ids`` each row's first three values as the one series id they map to: what
 * lean_data.storage.rows.statement_values gives. 1, 0 (declined: a row of another shape,
 * a value not bound here), or -1 with the exception statement_values raises. */
static int
read_rows(PyObject *rows, PyObject *ids, Py_ssize_t width, Param *params)
{
    Py_ssize_t first = ids == Py_None ? 0 : 3;
    Seen seen[SEEN];
    int known = 0;
    Param *p = params;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != width) {
            return 0;
        }
        if (first) {
            sqlite3_int64 id;
            int got = series_id(ids, row, seen, &known, &id);
            if (got <= 0) {
                return got;
            }
            p->kind = SQLITE_INTEGER;
            p->i = id;
            p++;
        }
        for (Py_ssize_t k = first; k < width; k++, p++) {
            PyObject *value = PyTuple_GET_ITEM(row, k);
            if (value == Py_True || value == Py_False) { /* SQLite stores a flag as 1 or 0 */
                p->kind = SQLITE_INTEGER;
                p->i = value == Py_True;
            }
            else if (!read_param(value, p)) {
                return 0;
            }
        }
    }
    return 1;
}

enum { RAN, DECLINED, FAILED };

/* Prepare ``sql`` into ``*stmt``: RAN when it is one writing statement of ``parameters``
 * parameters, DECLINED when it is something else, FAILED when SQLite refused it. */
static int
prepare(sqlite3 *db, const char *sql, Py_ssize_t size, Py_ssize_t parameters,
        sqlite3_stmt **stmt)
{
    const char *tail = NULL;
    if (sqlite3_prepare_v2(db, sql, (int)size + 1, stmt, &tail) != SQLITE_OK) {
        return FAILED;
    }
    if (*stmt == NULL || (tail != NULL && *tail != '\0') ||
        sqlite3_bind_parameter_count(*stmt) != parameters || sqlite3_stmt_readonly(*stmt)) {
        return DECLINED;
    }
    return RAN;
}

/* Bind and run ``stmt`` once per ``per`` parameters of ``params[0:count]``. */
static int
run(sqlite3_stmt *stmt, const Param *params, Py_ssize_t count, Py_ssize_t per)
{
    int rc = SQLITE_OK;
    for (Py_ssize_t at = 0; rc == SQLITE_OK && at < count; at += per) {
        rc = bind_all(stmt, params + at, per);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(stmt);
            while (rc == SQLITE_ROW) {
                rc = sqlite3_step(stmt);
            }
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        if (rc == SQLITE_OK) {
            rc = sqlite3_reset(stmt);
        }
    }
    return rc;
}

static PyObject *
write_values(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char usage[] =
        "write(connection, rows: list, ids: dict | None, block_sql: str, block_rows: int, "
        "row_sql: str)";
    if (nargs != 6 || !PyList_Check(args[1]) || (args[2] != Py_None && !PyDict_Check(args[2])) ||
        !PyUnicode_Check(args[3]) || !PyUnicode_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    PyObject *connection = args[0], *values = args[1], *ids = args[2];
    Py_ssize_t block_rows = PyNumber_AsSsize_t(args[4], PyExc_OverflowError);
    if (block_rows == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (block_rows <= 0) {
        PyErr_SetString(PyExc_ValueError, "block_rows must be > 0");
        return NULL;
    }
    Py_ssize_t rows = PyList_GET_SIZE(values);
    if (rows == 0) {
        Py_RETURN_TRUE; /* nothing to insert */
    }
    PyObject *head = PyList_GET_ITEM(values, 0);
    Py_ssize_t width = PyTuple_Check(head) ? PyTuple_GET_SIZE(head) : 0;
    Py_ssize_t columns = ids == Py_None ? width : width - 2; /* three texts -> one id */
    if (columns <= 0 || (ids != Py_None && width < 3)) {
        Py_RETURN_FALSE; /* not rows this writes: sqlite3 says what is wrong */
    }
    Py_ssize_t block_size, row_size;
    const char *block_sql = PyUnicode_AsUTF8AndSize(args[3], &block_size);
    const char *row_sql = PyUnicode_AsUTF8AndSize(args[5], &row_size);
    if (block_sql == NULL || row_sql == NULL) {
        return NULL;
    }
    if (USABLE < 0) {
        USABLE = same_library();
    }
    if (!USABLE || !PyObject_TypeCheck(connection, CONNECTION_TYPE)) {
        Py_RETURN_FALSE;
    }
    sqlite3 *db = ((ConnectionHead *)connection)->db;
    if (db == NULL) { /* closed: sqlite3's execute raises what it always raises */
        Py_RETURN_FALSE;
    }
    Py_ssize_t count = rows * columns;
    Param *params = PyMem_RawMalloc(sizeof(Param) * (size_t)count);
    if (params == NULL) {
        return PyErr_NoMemory();
    }
    int read = read_rows(values, ids, width, params);
    if (read <= 0) {
        PyMem_RawFree(params);
        if (read < 0) {
            return NULL;
        }
        Py_RETURN_FALSE;
    }
    /* The list holds the rows and they their values: the texts bound SQLITE_STATIC live
     * until the statements are finalized below (the reference is for a caller that drops
     * the list meanwhile). */
    Py_INCREF(values);
    Py_ssize_t per_block = columns * block_rows;
    Py_ssize_t in_blocks = count / per_block * per_block;
    int outcome = RAN, rc = SQLITE_OK;
    char *message = NULL;
    sqlite3_stmt *block = NULL, *row = NULL;
    Py_BEGIN_ALLOW_THREADS
    sqlite3_mutex_enter(sqlite3_db_mutex(db));
    if (in_blocks > 0) {
        outcome = prepare(db, block_sql, block_size, per_block, &block);
    }
    if (outcome == RAN && in_blocks < count) {
        outcome = prepare(db, row_sql, row_size, columns, &row);
    }
    if (outcome == RAN && sqlite3_get_autocommit(db)) { /* as sqlite3 does before DML */
        outcome = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? RAN : FAILED;
    }
    if (outcome == RAN && in_blocks > 0) {
        outcome = run(block, params, in_blocks, per_block) == SQLITE_OK ? RAN : FAILED;
    }
    if (outcome == RAN && in_blocks < count) {
        outcome = run(row, params + in_blocks, count - in_blocks, columns) == SQLITE_OK
                      ? RAN : FAILED;
    }
    if (outcome == FAILED) {
        rc = sqlite3_extended_errcode(db);
        message = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(block);
    sqlite3_finalize(row);
    sqlite3_mutex_leave(sqlite3_db_mutex(db));
    Py_END_ALLOW_THREADS
    Py_DECREF(values);
    PyMem_RawFree(params);
    if (outcome == FAILED) {
        PyObject *result = raise_sqlite(rc, message != NULL ? message : "unknown error");
        sqlite3_free(message);
        return result;
    }
    return PyBool_FromLong(outcome == RAN);
}

static PyMethodDef methods[] = {
    {"write", (PyCFunction)(void (*)(void))write_values, METH_FASTCALL,
     "write(connection, rows, ids, block_sql, block_rows, row_sql, /): insert rows "
     "without the GIL; False when it declined (nothing done)."},
    {"usable", usable, METH_NOARGS,
     "usable(): True when sqlite3 and this module call the same loaded SQLite library."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "lean_data._sqlite_rows",
    "Run a multi-row INSERT on a sqlite3 connection, binding without the GIL.", -1, methods,
};

PyMODINIT_FUNC
PyInit__sqlite_rows(void)
{
    SQLITE3 = PyImport_ImportModule("sqlite3");
    if (SQLITE3 == NULL) {
        return NULL;
    }
    PyObject *type = PyObject_GetAttrString(SQLITE3, "Connection");
    if (type == NULL) {
        return NULL;
    }
    if (!PyType_Check(type)) {
        Py_DECREF(type);
        PyErr_SetString(PyExc_ImportError, "sqlite3.Connection is not a type");
        return NULL;
    }
    CONNECTION_TYPE = (PyTypeObject *)type;
    return PyModule_Create(&module_def);
}
