/* SPDX-License-Identifier: MIT */
/*
 * Tests of command signatures (proto/cmdsig.c): the RFC 8032 test vector through a PEM file as
 * `openssl genpkey` writes it, the key id rule, strict parsing of public keys and signatures,
 * and every verdict (ok, bad signature, unknown key) including a trusted key id with a signature
 * by another key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmdsig.h"

/* RFC 8032, section 7.1, TEST 1 (empty message) */
#define RFC_PUB_B64 "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
#define RFC_KEY_ID  "21fe31dfa154a261" /* SHA-256(raw public key)[0..8], computed independently */
#define RFC_SIG_B64 \
 "5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv18FlbviRlUUFDjnoQCw=="
#define RFC_PEM                                                       \
 "-----BEGIN PRIVATE KEY-----\n"                                      \
 "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n" \
 "-----END PRIVATE KEY-----\n"

static char *write_tmp(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/cmdsig-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_rfc8032_vector(void **state)
{
	struct cmdsig_signer *s = NULL;
	struct cmdsig_verifier *v = NULL;
	struct cmdsig_pubkey k;
	char *path = write_tmp(RFC_PEM);
	char sig[CMDSIG_SIG_B64_LEN + 1], text[CMDSIG_PUBKEY_B64_LEN + 1], err[CMDSIG_ERR_MAX];

	(void)state;
	assert_int_equal(cmdsig_signer_load(path, &s, err, sizeof(err)), 0);
	unlink(path);
	cmdsig_pubkey_format(cmdsig_signer_pubkey(s), text);
	assert_string_equal(text, RFC_PUB_B64);
	assert_string_equal(cmdsig_signer_pubkey(s)->id, RFC_KEY_ID);
	/* Ed25519 is deterministic: the same signature as the RFC */
	assert_int_equal(cmdsig_sign(s, "", 0, sig), 0);
	assert_string_equal(sig, RFC_SIG_B64);

	assert_int_equal(cmdsig_pubkey_parse(RFC_PUB_B64, strlen(RFC_PUB_B64), &k), 0);
	assert_string_equal(k.id, RFC_KEY_ID);
	assert_int_equal(cmdsig_verifier_new(&k, 1, &v), 0);
	assert_int_equal(
	        cmdsig_verify(v, "", 0, sig, strlen(sig), RFC_KEY_ID, 16, err, sizeof(err)),
	        CMDSIG_OK);
	/* one more byte of payload: no longer the signed bytes */
	assert_int_equal(
	        cmdsig_verify(v, " ", 1, sig, strlen(sig), RFC_KEY_ID, 16, err, sizeof(err)),
	        CMDSIG_BAD_SIGNATURE);
	cmdsig_verifier_free(v);
	cmdsig_signer_free(s);
}

static void test_load_errors(void **state)
{
	struct cmdsig_signer *s = NULL;
	char err[CMDSIG_ERR_MAX], *path;

	(void)state;
	assert_int_equal(cmdsig_signer_load("/nonexistent/key.pem", &s, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/key.pem"));
	path = write_tmp("not a key\n");
	assert_int_equal(cmdsig_signer_load(path, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "Ed25519"));
	unlink(path);
	/* a public key is not a private key */
	path = write_tmp("-----BEGIN PUBLIC KEY-----\n"
	                 "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
	                 "-----END PUBLIC KEY-----\n");
	assert_int_equal(cmdsig_signer_load(path, &s, err, sizeof(err)), -EINVAL);
	unlink(path);
	assert_null(s);
}

static void test_pubkey_parse_strict(void **state)
{
	static const char *const bad[] = {
		"",
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo",     /* padding missing */
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo==",   /* too long */
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURp=",    /* non-zero unused bits */
		"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=",    /* URL-safe alphabet */
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHU o=",    /* blank inside */
		"=1qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",    /* padding first */
		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR==",    /* 31 bytes */
		"MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiM", /* a DER prefix, not raw */
	};
	struct cmdsig_pubkey k;
	char text[CMDSIG_PUBKEY_B64_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cmdsig_pubkey_parse(bad[i], strlen(bad[i]), &k), -EINVAL);
	/* length is given, not read to a NUL: a good key followed by junk is refused */
	assert_int_equal(cmdsig_pubkey_parse(RFC_PUB_B64 "x", 45, &k), -EINVAL);
	assert_int_equal(cmdsig_pubkey_parse(RFC_PUB_B64 "x", 44, &k), 0);
	cmdsig_pubkey_format(&k, text);
	assert_string_equal(text, RFC_PUB_B64);
}

static void test_verdicts(void **state)
{
	struct cmdsig_signer *a = NULL, *b = NULL;
	struct cmdsig_verifier *v = NULL;
	struct cmdsig_pubkey keys[1];
	const char *msg = "{\"cmd_id\":\"x\"}";
	char sig_a[CMDSIG_SIG_B64_LEN + 1], sig_b[CMDSIG_SIG_B64_LEN + 1], err[CMDSIG_ERR_MAX];
	char bad[CMDSIG_SIG_B64_LEN + 1];
	const char *id_a, *id_b;
	size_t n = strlen(msg);

	(void)state;
	assert_int_equal(cmdsig_signer_generate(&a), 0);
	assert_int_equal(cmdsig_signer_generate(&b), 0);
	id_a = cmdsig_signer_pubkey(a)->id;
	id_b = cmdsig_signer_pubkey(b)->id;
	assert_string_not_equal(id_a, id_b);
	keys[0] = *cmdsig_signer_pubkey(a);
	assert_int_equal(cmdsig_verifier_new(keys, 1, &v), 0);
	assert_int_equal(cmdsig_sign(a, msg, n, sig_a), 0);
	assert_int_equal(cmdsig_sign(b, msg, n, sig_b), 0);

	assert_int_equal(cmdsig_verify(v, msg, n, sig_a, 88, id_a, 16, err, sizeof(err)),
	                 CMDSIG_OK);
	/* b is not trusted */
	assert_int_equal(cmdsig_verify(v, msg, n, sig_b, 88, id_b, 16, err, sizeof(err)),
	                 CMDSIG_UNKNOWN_KEY);
	assert_non_null(strstr(err, id_b));
	/* b claims a's key id: the trusted key's bytes decide */
	assert_int_equal(cmdsig_verify(v, msg, n, sig_b, 88, id_a, 16, err, sizeof(err)),
	                 CMDSIG_BAD_SIGNATURE);
	/* absent, truncated, altered */
	assert_int_equal(cmdsig_verify(v, msg, n, NULL, 0, id_a, 16, err, sizeof(err)),
	                 CMDSIG_BAD_SIGNATURE);
	assert_int_equal(cmdsig_verify(v, msg, n, sig_a, 88, NULL, 0, err, sizeof(err)),
	                 CMDSIG_BAD_SIGNATURE);
	assert_int_equal(cmdsig_verify(v, msg, n, sig_a, 87, id_a, 16, err, sizeof(err)),
	                 CMDSIG_BAD_SIGNATURE);
	assert_int_equal(cmdsig_verify(v, msg, n, sig_a, 88, id_a, 15, err, sizeof(err)),
	                 CMDSIG_BAD_SIGNATURE);
	assert_int_equal(cmdsig_verify(v, msg, n - 1, sig_a, 88, id_a, 16, err, sizeof(err)),
	                 CMDSIG_BAD_SIGNATURE);
	memcpy(bad, sig_a, sizeof(bad));
	bad[10] = bad[10] == 'A' ? 'B' : 'A';
	assert_int_equal(cmdsig_verify(v, msg, n, bad, 88, id_a, 16, err, sizeof(err)),
	                 CMDSIG_BAD_SIGNATURE);
	/* upper-case hex is not the key id's spelling */
	{
		char up[17];

		for (int i = 0; i < 17; i++)
			up[i] = (char)(id_a[i] >= 'a' && id_a[i] <= 'f' ? id_a[i] - 32 : id_a[i]);
		if (strcmp(up, id_a) != 0)
			assert_int_equal(
			        cmdsig_verify(v, msg, n, sig_a, 88, up, 16, err, sizeof(err)),
			        CMDSIG_BAD_SIGNATURE);
	}
	cmdsig_verifier_free(v);

	/* rotation: both trusted */
	{
		struct cmdsig_pubkey two[2] = { *cmdsig_signer_pubkey(a),
			                        *cmdsig_signer_pubkey(b) };

		assert_int_equal(cmdsig_verifier_new(two, 2, &v), 0);
		assert_int_equal(cmdsig_verify(v, msg, n, sig_a, 88, id_a, 16, err, sizeof(err)),
		                 CMDSIG_OK);
		assert_int_equal(cmdsig_verify(v, msg, n, sig_b, 88, id_b, 16, err, sizeof(err)),
		                 CMDSIG_OK);
		cmdsig_verifier_free(v);
	}
	/* no key at all: every signed message names an unknown key */
	assert_int_equal(cmdsig_verifier_new(NULL, 0, &v), 0);
	assert_int_equal(cmdsig_verify(v, msg, n, sig_a, 88, id_a, 16, err, sizeof(err)),
	                 CMDSIG_UNKNOWN_KEY);
	cmdsig_verifier_free(v);
	assert_int_equal(cmdsig_verifier_new(keys, CMDSIG_KEYS_MAX + 1, &v), -EINVAL);
	cmdsig_signer_free(a);
	cmdsig_signer_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8032_vector),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_pubkey_parse_strict),
		cmocka_unit_test(test_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
