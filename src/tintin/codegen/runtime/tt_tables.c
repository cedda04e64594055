/* tt_tables.c - the one translation unit that defines the generated tables of tt_tables.h. */
#define TT_TABLES_IMPLEMENTATION
#include "tt_tables.h"
