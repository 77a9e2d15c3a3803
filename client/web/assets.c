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
	/* A file by its name, else the one index.html: the script reads the path (/jobs, /jobs/ID, ...) and draws
	 * the page. */
	const struct embedded_file *index = NULL, *f;
	for (f = embedded_web; f->name != NULL; f++) {
		if (strcmp(f->name, "index.html") == 0)
			index = f;
		if (strcmp(f->name, path + 1) == 0 && strchr(path + 1, '/') == NULL)
			break;
	}
	if (f->name == NULL)
		f = index;
	if (f != NULL) {
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
