/* Python 3.11+'s _sqlite3, built against SQLite >= 3.36, links sqlite3_serialize/deserialize (for
 * Connection.serialize/deserialize); Debian 11's libsqlite3 was built without them, so the module
 * would not load. framefarm never calls them; these stand-ins fail if anything does. */
#include <stddef.h>

unsigned char *sqlite3_serialize(void *db, const char *schema, long long *size, unsigned flags) {
    (void)db; (void)schema; (void)flags;
    if (size) *size = -1;
    return NULL;
}

int sqlite3_deserialize(void *db, const char *schema, unsigned char *data, long long size, long long buffer,
                        unsigned flags) {
    (void)db; (void)schema; (void)data; (void)size; (void)buffer; (void)flags;
    return 1; /* SQLITE_ERROR */
}
