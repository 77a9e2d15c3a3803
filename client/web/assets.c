/*
 * assets: the dashboard's files (client/web/ui/), compiled into the binary by tools/embed.sh as C strings, so
 * hopper-web needs no files beside it and the dashboard works offline (no CDN). Served with the CSP of
 * http.c: scripts and styles only from these files, no inline script.
 */
#include <string.h>

#include "embedded.h"
#include "web.h"

extern const struct embedded_file embedded_web[];

static const struct {
	const char *ext, *ctype;
} types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
};

const char *
assets_find(const char *path, size_t *len, const char **ctype)
{
	/* Every page is the one index.html: the script reads the path (/jobs, /jobs/ID, ...) and draws it. */
	const char *name = path + 1;
	if (strcmp(path, "/") == 0 || strchr(name, '.') == NULL)
		name = "index.html";
	for (const struct embedded_file *f = embedded_web; f->name != NULL; f++) {
		if (strcmp(f->name, name) != 0)
			continue;
		*len = strlen(f->text);
		*ctype = "application/octet-stream";
		const char *dot = strrchr(f->name, '.');
		for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
			if (strcmp(dot, types[i].ext) == 0)
				*ctype = types[i].ctype;
		return f->text;
	}
	return NULL;
}
