/* embedded: text files compiled into hopperd (Lua scripts, SQL migrations), see tools/embed.sh. */
#ifndef HOPPER_EMBEDDED_H
#define HOPPER_EMBEDDED_H

struct embedded_file {
	const char *name; /* file name, e.g. "001_init.sql"; NULL ends the array */
	const char *text;
};

extern const struct embedded_file embedded_lua[];        /* the files of daemon/lua, sorted by name */
extern const struct embedded_file embedded_migrations[]; /* the files of schema/migrations, sorted by name */

#endif
