/*
 * wf_expr: the filter step's condition language. A recursive descent parser builds a small tree that is
 * evaluated against the run context; nothing is ever handed to an interpreter. Grammar (README "Filter
 * expressions"):
 *
 *   expr    := and { ("or" | "||") and }
 *   and     := unary { ("and" | "&&") unary }
 *   unary   := ("not" | "!") unary | cmp
 *   cmp     := primary [ ("==" | "!=" | "<" | "<=" | ">" | ">=" | "contains") primary ]
 *   primary := NUMBER | STRING | "true" | "false" | "null" | REF | "{{" REF "}}" | "(" expr ")"
 *   REF     := a reference path (input.x, steps.ID.output.y, env.NAME, AutomateOS node.path)
 *   STRING  := '...' or "..." with \\ \' \" \n \t escapes; a string holding {{ref}} is rendered as a template
 *
 * Limits: WF_EXPR_MAX bytes, WF_EXPR_NODES_MAX nodes, WF_EXPR_DEPTH_MAX nesting.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workflow.h"
#include "xmalloc.h"

enum kind { K_LIT, K_REF, K_TMPL, K_NOT, K_AND, K_OR, K_CMP };
enum cmp_op { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE, C_CONTAINS };

struct node {
	enum kind kind;
	enum cmp_op op;
	int a, b;        /* children */
	json_t *lit;     /* K_LIT, K_TMPL (string) */
	size_t off, len; /* K_REF: the path in text */
};

struct wf_expr {
	char *text;
	struct node *nodes;
	int n;
	int root;
};

struct parser {
	struct wf_expr *e;
	const char *s;
	size_t pos, len;
	int depth;
	char *err;
	size_t errlen;
	int failed;
};

static int parse_or(struct parser *p);

static int
fail(struct parser *p, const char *why)
{
	if (!p->failed)
		snprintf(p->err, p->errlen, "condition col %zu: %s", p->pos + 1, why);
	p->failed = 1;
	return -1;
}

static int
new_node(struct parser *p, enum kind k)
{
	if (p->e->n >= WF_EXPR_NODES_MAX)
		return fail(p, "too many terms");
	struct node *nd = &p->e->nodes[p->e->n];
	memset(nd, 0, sizeof(*nd));
	nd->kind = k;
	nd->a = nd->b = -1;
	return p->e->n++;
}

static void
skip_ws(struct parser *p)
{
	while (p->pos < p->len &&
	       (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

static int
word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
	       c == '.';
}

/* Length of the word (identifier or path) at pos; 0 if none starts there. */
static size_t
word_len(const struct parser *p)
{
	char c = p->pos < p->len ? p->s[p->pos] : 0;
	if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'))
		return 0;
	size_t n = 0;
	while (p->pos + n < p->len && word_char(p->s[p->pos + n]))
		n++;
	return n;
}

/* Consumes the keyword or symbol if it is next. */
static int
accept(struct parser *p, const char *tok)
{
	skip_ws(p);
	size_t n = strlen(tok);
	if (p->pos + n > p->len || memcmp(p->s + p->pos, tok, n) != 0)
		return 0;
	if (word_char(tok[0]) && word_len(p) != n)
		return 0; /* "order" is a path, not "or" */
	p->pos += n;
	return 1;
}

static int
parse_string(struct parser *p)
{
	char q = p->s[p->pos++];
	char *buf = xmalloc(p->len + 1);
	size_t n = 0;
	while (p->pos < p->len && p->s[p->pos] != q) {
		char c = p->s[p->pos++];
		if (c == '\\' && p->pos < p->len) {
			c = p->s[p->pos++];
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
		}
		buf[n++] = c;
	}
	if (p->pos >= p->len) {
		free(buf);
		return fail(p, "unterminated string");
	}
	p->pos++;
	json_t *str = json_stringn(buf, n);
	int is_tmpl = memmem(buf, n, "{{", 2) != NULL;
	free(buf);
	if (str == NULL)
		return fail(p, "string is not valid UTF-8");
	int id = new_node(p, is_tmpl ? K_TMPL : K_LIT);
	if (id < 0) {
		json_decref(str);
		return -1;
	}
	p->e->nodes[id].lit = str;
	return id;
}

static int
parse_number(struct parser *p)
{
	char buf[64];
	size_t n = 0;
	while (p->pos + n < p->len && n < sizeof(buf) - 1 && strchr("0123456789.eE+-", p->s[p->pos + n]) != NULL &&
	       (n == 0 || p->s[p->pos + n] != '-' || p->s[p->pos + n - 1] == 'e' || p->s[p->pos + n - 1] == 'E'))
		n++;
	memcpy(buf, p->s + p->pos, n);
	buf[n] = '\0';
	char *end;
	double d = strtod(buf, &end);
	if (end != buf + n || n == 0 || !isfinite(d))
		return fail(p, "bad number");
	p->pos += n;
	int id = new_node(p, K_LIT);
	if (id < 0)
		return -1;
	p->e->nodes[id].lit = (d == floor(d) && fabs(d) < 9e15) ? json_integer((json_int_t)d) : json_real(d);
	return id;
}

static int
ref_node(struct parser *p, size_t off, size_t len)
{
	if (len == 0 || len > WF_PATH_MAX)
		return fail(p, "bad reference");
	int id = new_node(p, K_REF);
	if (id < 0)
		return -1;
	p->e->nodes[id].off = off;
	p->e->nodes[id].len = len;
	return id;
}

static int
parse_primary(struct parser *p)
{
	skip_ws(p);
	if (p->pos >= p->len)
		return fail(p, "expression ends too early");
	char c = p->s[p->pos];
	if (c == '(') {
		p->pos++;
		if (++p->depth > WF_EXPR_DEPTH_MAX)
			return fail(p, "nested too deeply");
		int id = parse_or(p);
		p->depth--;
		if (id < 0)
			return -1;
		if (!accept(p, ")"))
			return fail(p, "missing )");
		return id;
	}
	if (c == '"' || c == '\'')
		return parse_string(p);
	if ((c >= '0' && c <= '9') ||
	    ((c == '-' || c == '.') && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9'))
		return parse_number(p);
	if (c == '{' && p->pos + 1 < p->len && p->s[p->pos + 1] == '{') {
		const char *close = memmem(p->s + p->pos, p->len - p->pos, "}}", 2);
		if (close == NULL)
			return fail(p, "unterminated {{");
		size_t a = p->pos + 2, b = (size_t)(close - p->s);
		while (a < b && p->s[a] == ' ')
			a++;
		while (b > a && p->s[b - 1] == ' ')
			b--;
		p->pos = (size_t)(close - p->s) + 2;
		return ref_node(p, a, b - a);
	}
	static const char *const words[] = {"true", "false", "null"};
	for (int i = 0; i < 3; i++) {
		if (accept(p, words[i])) {
			int id = new_node(p, K_LIT);
			if (id >= 0)
				p->e->nodes[id].lit = i == 0 ? json_true() : i == 1 ? json_false() : json_null();
			return id;
		}
	}
	size_t n = word_len(p);
	if (n == 0)
		return fail(p, "expected a value, a reference or (");
	size_t off = p->pos;
	p->pos += n;
	return ref_node(p, off, n);
}

static int
parse_cmp(struct parser *p)
{
	static const struct {
		const char *tok;
		enum cmp_op op;
	} ops[] = {{"==", C_EQ},
	           {"!=", C_NE},
	           {"<=", C_LE},
	           {">=", C_GE},
	           {"<", C_LT},
	           {">", C_GT},
	           {"contains", C_CONTAINS}};
	int left = parse_primary(p);
	if (left < 0)
		return -1;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (!accept(p, ops[i].tok))
			continue;
		int right = parse_primary(p);
		if (right < 0)
			return -1;
		int id = new_node(p, K_CMP);
		if (id < 0)
			return -1;
		p->e->nodes[id].op = ops[i].op;
		p->e->nodes[id].a = left;
		p->e->nodes[id].b = right;
		return id;
	}
	return left;
}

static int
parse_unary(struct parser *p)
{
	skip_ws(p);
	/* "!" but not "!=" */
	int bang = p->pos + 1 < p->len && p->s[p->pos] == '!' && p->s[p->pos + 1] != '=';
	if (bang || accept(p, "not")) {
		if (bang)
			p->pos++;
		if (++p->depth > WF_EXPR_DEPTH_MAX)
			return fail(p, "nested too deeply");
		int a = parse_unary(p);
		p->depth--;
		if (a < 0)
			return -1;
		int id = new_node(p, K_NOT);
		if (id >= 0)
			p->e->nodes[id].a = a;
		return id;
	}
	return parse_cmp(p);
}

static int
parse_binary(struct parser *p, enum kind k, const char *w, const char *sym, int (*sub)(struct parser *))
{
	int left = sub(p);
	while (left >= 0 && (accept(p, w) || accept(p, sym))) {
		int right = sub(p);
		if (right < 0)
			return -1;
		int id = new_node(p, k);
		if (id < 0)
			return -1;
		p->e->nodes[id].a = left;
		p->e->nodes[id].b = right;
		left = id;
	}
	return left;
}

static int
parse_and(struct parser *p)
{
	return parse_binary(p, K_AND, "and", "&&", parse_unary);
}

static int
parse_or(struct parser *p)
{
	return parse_binary(p, K_OR, "or", "||", parse_and);
}

struct wf_expr *
wf_expr_parse(const char *text, char *err, size_t errlen)
{
	size_t len = strlen(text);
	if (len > WF_EXPR_MAX) {
		snprintf(err, errlen, "condition is %zu bytes; at most %d", len, WF_EXPR_MAX);
		return NULL;
	}
	struct wf_expr *e = xcalloc(1, sizeof(*e));
	e->text = xstrdup(text);
	e->nodes = xcalloc(WF_EXPR_NODES_MAX, sizeof(struct node));
	struct parser p = {.e = e, .s = e->text, .len = len, .err = err, .errlen = errlen};
	e->root = parse_or(&p);
	skip_ws(&p);
	if (e->root >= 0 && p.pos < p.len)
		fail(&p, "unexpected text after the expression");
	if (p.failed || e->root < 0) {
		wf_expr_free(e);
		return NULL;
	}
	return e;
}

void
wf_expr_free(struct wf_expr *e)
{
	if (e == NULL)
		return;
	for (int i = 0; i < e->n; i++)
		json_decref(e->nodes[i].lit);
	free(e->nodes);
	free(e->text);
	free(e);
}

int
wf_expr_refs(const struct wf_expr *e, int (*fn)(int is_template, const char *s, size_t len, void *arg), void *arg)
{
	for (int i = 0; i < e->n; i++) {
		const struct node *nd = &e->nodes[i];
		int r = 0;
		if (nd->kind == K_REF)
			r = fn(0, e->text + nd->off, nd->len, arg);
		else if (nd->kind == K_TMPL)
			r = fn(1, json_string_value(nd->lit), json_string_length(nd->lit), arg);
		if (r != 0)
			return r;
	}
	return 0;
}

/* --- evaluation --- */

static int eval_node(const struct wf_expr *e, int i, const struct wf_def *def, json_t *ctx);

static int
truthy(json_t *v)
{
	if (v == NULL || json_is_null(v) || json_is_false(v))
		return 0;
	if (json_is_number(v))
		return json_number_value(v) != 0;
	if (json_is_string(v))
		return json_string_length(v) > 0;
	if (json_is_array(v))
		return json_array_size(v) > 0;
	if (json_is_object(v))
		return json_object_size(v) > 0;
	return 1;
}

/* A node's value: a new reference (json_null for a missing reference). */
static json_t *
value(const struct wf_expr *e, int i, const struct wf_def *def, json_t *ctx)
{
	const struct node *nd = &e->nodes[i];
	if (nd->kind == K_LIT)
		return json_incref(nd->lit);
	if (nd->kind == K_REF) {
		json_t *v = wf_ref_resolve(def, ctx, e->text + nd->off, nd->len);
		return v ? json_incref(v) : json_null();
	}
	if (nd->kind == K_TMPL) {
		char err[16];
		json_t *v = wf_template_render(def, ctx, json_string_value(nd->lit), err, sizeof(err));
		return v ? v : json_null();
	}
	return eval_node(e, i, def, ctx) ? json_true() : json_false();
}

static int
compare(enum cmp_op op, json_t *a, json_t *b)
{
	if (json_is_number(a) && json_is_number(b)) {
		double x = json_number_value(a), y = json_number_value(b);
		switch (op) {
		case C_EQ: return x == y;
		case C_NE: return x != y;
		case C_LT: return x < y;
		case C_LE: return x <= y;
		case C_GT: return x > y;
		case C_GE: return x >= y;
		default: return 0;
		}
	}
	if (op == C_EQ)
		return json_equal(a, b);
	if (op == C_NE)
		return !json_equal(a, b);
	if (op == C_CONTAINS) {
		if (json_is_string(a) && json_is_string(b))
			return memmem(json_string_value(a), json_string_length(a), json_string_value(b),
			              json_string_length(b)) != NULL;
		if (json_is_array(a)) {
			size_t k;
			json_t *x;
			json_array_foreach(a, k, x) if (json_equal(x, b) ||
			                                (json_is_number(x) && json_is_number(b) &&
			                                 json_number_value(x) == json_number_value(b))) return 1;
			return 0;
		}
		if (json_is_object(a) && json_is_string(b))
			return json_object_get(a, json_string_value(b)) != NULL;
		return 0;
	}
	if (json_is_string(a) && json_is_string(b)) {
		int c = strcmp(json_string_value(a), json_string_value(b));
		return op == C_LT ? c < 0 : op == C_LE ? c <= 0 : op == C_GT ? c > 0 : c >= 0;
	}
	return 0; /* ordering values of different kinds is false, never an error */
}

static int
eval_node(const struct wf_expr *e, int i, const struct wf_def *def, json_t *ctx)
{
	const struct node *nd = &e->nodes[i];
	switch (nd->kind) {
	case K_NOT: return !eval_node(e, nd->a, def, ctx);
	case K_AND: return eval_node(e, nd->a, def, ctx) && eval_node(e, nd->b, def, ctx);
	case K_OR: return eval_node(e, nd->a, def, ctx) || eval_node(e, nd->b, def, ctx);
	case K_CMP: {
		json_t *a = value(e, nd->a, def, ctx), *b = value(e, nd->b, def, ctx);
		int r = compare(nd->op, a, b);
		json_decref(a);
		json_decref(b);
		return r;
	}
	default: {
		json_t *v = value(e, i, def, ctx);
		int r = truthy(v);
		json_decref(v);
		return r;
	}
	}
}

int
wf_expr_eval(const struct wf_expr *e, const struct wf_def *def, json_t *ctx)
{
	return eval_node(e, e->root, def, ctx);
}
