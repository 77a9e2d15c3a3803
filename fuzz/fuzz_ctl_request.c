/*
 * libFuzzer harness for the control request validator and the client-side reply parser: any payload is
 * either a request that matches the catalogue (known op, every field of its spec typed and bounded, no
 * unknown field) or refused with a code and a reason; replies parse or are refused with a reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"

/* Re-checks an accepted request against the catalogue, independently of the validator's own path. */
static void
accepted(const struct ctl_request *req)
{
	if (req->root == NULL || !json_is_object(req->root) || req->op == NULL)
		__builtin_trap();
	if (strcmp(json_string_value(json_object_get(req->root, "op")), req->op->name) != 0)
		__builtin_trap();
	for (const struct ctl_arg *a = req->op->args; a->name != NULL; a++) {
		json_t *v = json_object_get(req->root, a->name);
		if (a->required && (v == NULL || json_is_null(v)))
			__builtin_trap();
		if (v != NULL && a->type == CTL_ARG_INT && !json_is_null(v) &&
		    (!json_is_number(v) || json_number_value(v) < (double)a->min ||
		     json_number_value(v) > (double)a->max))
			__builtin_trap();
	}
	json_t *reply = ctl_reply_ok(req->id, NULL);
	size_t n = 0;
	unsigned char *f = ctl_frame_encode(reply, CTL_MAX_FRAME_DEFAULT, &n);
	if (f == NULL || n < CTL_FRAME_HEADER_LEN + 2)
		__builtin_trap();
	free(f);
	json_decref(reply);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request req;
	char err[256];
	enum ctl_err e = ctl_request_parse(data, size, &req, err, sizeof(err));
	if (e == CTL_OK)
		accepted(&req);
	else {
		if (err[0] == '\0' || (e != CTL_E_BAD_REQUEST && e != CTL_E_UNKNOWN_OP))
			__builtin_trap(); /* a refusal says why, with one of the two codes the validator owns */
		json_t *r = ctl_reply_error(req.id, e, "%s", err);
		if (r == NULL || json_object_get(json_object_get(r, "error"), "message") == NULL)
			__builtin_trap();
		json_decref(r);
	}
	ctl_request_free(&req);
	json_t *rep = ctl_reply_parse(data, size, err, sizeof(err));
	if (rep == NULL && err[0] == '\0')
		__builtin_trap();
	json_decref(rep);
	return 0;
}
