/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proto_decode: untrusted bytes from the broker through every decoder of proto.h, plus the
 * topic parser and the text sanitizer. Property checked beyond "no crash, no leak": whatever
 * decodes must re-encode to JSON that decodes again (the encoder never emits what the decoder
 * rejects), so a consumer can always republish what it accepted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "topics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ROUNDTRIP(type, decode, encode)                                 \
 do {                                                                   \
  struct type *a = calloc(2, sizeof(*a));                               \
  char *out;                                                            \
  if (!a)                                                               \
   break;                                                               \
  if (decode((const char *)data, size, &a[0], err, sizeof(err)) == 0) { \
   out = encode(&a[0]);                                                 \
   if (!out || decode(out, strlen(out), &a[1], err, sizeof(err)) != 0)  \
    abort();                                                            \
   free(out);                                                           \
  }                                                                     \
  free(a);                                                              \
 } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[PROTO_ERR_MAX], text[512], agent[TOPICS_AGENT_MAX], udid[TOPICS_UDID_MAX];
	enum topics_kind kind;
	enum proto_type type;

	(void)proto_peek_type((const char *)data, size, &type);
	ROUNDTRIP(proto_device_state, proto_device_state_decode, proto_device_state_encode);
	ROUNDTRIP(proto_device_event, proto_device_event_decode, proto_device_event_encode);
	ROUNDTRIP(proto_agent_status, proto_agent_status_decode, proto_agent_status_encode);
	ROUNDTRIP(proto_agent_meta, proto_agent_meta_decode, proto_agent_meta_encode);
	ROUNDTRIP(proto_agent_event, proto_agent_event_decode, proto_agent_event_encode);

	/* the same bytes as a topic and as text (both need a terminated copy) */
	if (size < sizeof(text)) {
		memcpy(text, data, size);
		text[size] = '\0';
		if (topics_parse(text, &kind, agent, udid) == 0 &&
		    (!topics_agent_id_valid(agent) ||
		     (topics_kind_has_udid(kind) && !topics_udid_valid(udid))))
			abort();
		proto_text_copy(err, sizeof(err), text);
	}
	return 0;
}
