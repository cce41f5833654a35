/* SPDX-License-Identifier: MIT */
/* fuzz_usbmux: the usbmuxd request parser on arbitrary bytes: a stream of 16-byte headers and
 * plist payloads, split exactly as the mux splits its input buffer. */
#include <stddef.h>
#include <stdint.h>

#include "mux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct mux_header h;
		struct mux_request req;

		if (mux_parse_header(data + off, size - off, &h) < 0)
			break;
		if (size - off < h.length) {
			/* Also try the truncated payload as a whole plist. */
			(void)mux_decode_request(data + off + MUX_HEADER_SIZE,
			                         size - off - MUX_HEADER_SIZE, &req);
			mux_request_done(&req);
			break;
		}
		if (mux_decode_request(data + off + MUX_HEADER_SIZE, h.length - MUX_HEADER_SIZE,
		                       &req) == 0)
			(void)mux_request_port(&req);
		mux_request_done(&req);
		off += h.length;
	}
	return 0;
}
