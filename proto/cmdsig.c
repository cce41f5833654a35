/* SPDX-License-Identifier: MIT */
/*
 * cmdsig: Ed25519 over the exact payload bytes, with OpenSSL 3.
 *
 * Base64 text is read strictly (fixed length, padded, canonical): the decoded bytes are encoded
 * again and must give the same text, so one key or signature has exactly one spelling and a
 * config line cannot hide trailing junk. Ed25519 itself is strict in OpenSSL 3 (it refuses
 * non-canonical S values), so a valid signature cannot be re-spelled either.
 */
#include "cmdsig.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cmdsig_signer {
	EVP_PKEY *pkey;
	struct cmdsig_pubkey pub;
};

struct cmdsig_verifier {
	int n;
	struct cmdsig_pubkey keys[CMDSIG_KEYS_MAX];
	EVP_PKEY *pkeys[CMDSIG_KEYS_MAX];
};

static void set_err(char *err, size_t err_size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (!err || err_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/*
 * Decodes text (len chars) into exactly n bytes of out, accepting only the one canonical padded
 * spelling of n bytes. 0 or -EINVAL.
 */
static int b64_decode_exact(const char *text, size_t len, uint8_t *out, size_t n)
{
	size_t want = 4 * ((n + 2) / 3), pad = (3 - n % 3) % 3;
	unsigned char dec[3 * (CMDSIG_SIG_B64_LEN / 4)];
	unsigned char enc[CMDSIG_SIG_B64_LEN + 1];

	if (!text || len != want || want > CMDSIG_SIG_B64_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		bool is_pad = i >= len - pad;

		if (is_pad ? text[i] != '=' : !b64_char(text[i]))
			return -EINVAL;
	}
	if (EVP_DecodeBlock(dec, (const unsigned char *)text, (int)len) != (int)(3 * (len / 4)))
		return -EINVAL;
	/* canonical: the unused low bits before the padding must be zero */
	if (EVP_EncodeBlock(enc, dec, (int)n) != (int)len || memcmp(enc, text, len) != 0)
		return -EINVAL;
	memcpy(out, dec, n);
	return 0;
}

void cmdsig_key_id(const uint8_t *raw, char *id)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	/* SHA-256 of 32 bytes cannot fail short of a broken OpenSSL; all zeros then, never junk */
	if (EVP_Digest(raw, CMDSIG_PUBKEY_LEN, md, &md_len, EVP_sha256(), NULL) != 1 ||
	    md_len < CMDSIG_KEY_ID_LEN / 2)
		memset(md, 0, sizeof(md));
	for (int i = 0; i < CMDSIG_KEY_ID_LEN / 2; i++) {
		id[2 * i] = hex[md[i] >> 4];
		id[2 * i + 1] = hex[md[i] & 15];
	}
	id[CMDSIG_KEY_ID_LEN] = '\0';
}

int cmdsig_pubkey_parse(const char *text, size_t len, struct cmdsig_pubkey *ret)
{
	struct cmdsig_pubkey k;
	EVP_PKEY *pkey;

	if (b64_decode_exact(text, len, k.raw, sizeof(k.raw)) < 0)
		return -EINVAL;
	/* OpenSSL accepts any 32 bytes here; the check keeps the door open for a stricter one */
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, k.raw, sizeof(k.raw));
	if (!pkey) {
		ERR_clear_error();
		return -EINVAL;
	}
	EVP_PKEY_free(pkey);
	cmdsig_key_id(k.raw, k.id);
	*ret = k;
	return 0;
}

void cmdsig_pubkey_format(const struct cmdsig_pubkey *k, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, k->raw, CMDSIG_PUBKEY_LEN);
	out[CMDSIG_PUBKEY_B64_LEN] = '\0';
}

/* ---- signing ---- */

/* Never prompt on a terminal for a passphrase: an encrypted key file is an error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int signer_from_pkey(EVP_PKEY *pkey, struct cmdsig_signer **ret)
{
	struct cmdsig_signer *s;
	size_t n = CMDSIG_PUBKEY_LEN;

	s = calloc(1, sizeof(*s));
	if (!s) {
		EVP_PKEY_free(pkey);
		return -ENOMEM;
	}
	s->pkey = pkey;
	if (EVP_PKEY_get_raw_public_key(pkey, s->pub.raw, &n) != 1 || n != CMDSIG_PUBKEY_LEN) {
		ERR_clear_error();
		cmdsig_signer_free(s);
		return -EINVAL;
	}
	cmdsig_key_id(s->pub.raw, s->pub.id);
	*ret = s;
	return 0;
}

int cmdsig_signer_load(const char *path, struct cmdsig_signer **ret, char *err, size_t err_size)
{
	EVP_PKEY *pkey = NULL;
	FILE *f;
	int r;

	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		set_err(err, err_size, "cannot read the signing key '%s': %s", path,
		        strerror(errno));
		return r;
	}
	pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (!pkey || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		ERR_clear_error();
		EVP_PKEY_free(pkey);
		set_err(err, err_size,
		        "'%s' is not an unencrypted PEM Ed25519 private key "
		        "(make one with: openssl genpkey -algorithm ed25519 -out FILE)",
		        path);
		return -EINVAL;
	}
	r = signer_from_pkey(pkey, ret);
	if (r < 0)
		set_err(err, err_size, "'%s': cannot read its public key", path);
	return r;
}

int cmdsig_signer_generate(struct cmdsig_signer **ret)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	if (!pkey) {
		ERR_clear_error();
		return -EIO;
	}
	return signer_from_pkey(pkey, ret);
}

struct cmdsig_signer *cmdsig_signer_free(struct cmdsig_signer *s)
{
	if (s) {
		EVP_PKEY_free(s->pkey);
		free(s);
	}
	return NULL;
}

const struct cmdsig_pubkey *cmdsig_signer_pubkey(const struct cmdsig_signer *s)
{
	return &s->pub;
}

int cmdsig_sign(const struct cmdsig_signer *s, const void *payload, size_t len, char *sig)
{
	unsigned char raw[CMDSIG_SIG_LEN];
	size_t n = sizeof(raw);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = -EIO;

	/* Ed25519 is one-shot: no digest (NULL), the whole message in one call */
	if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, s->pkey) != 1 ||
	    EVP_DigestSign(ctx, raw, &n, payload, len) != 1 || n != sizeof(raw)) {
		ERR_clear_error();
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)sig, raw, CMDSIG_SIG_LEN);
	sig[CMDSIG_SIG_B64_LEN] = '\0';
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/* ---- verifying ---- */

int cmdsig_verifier_new(const struct cmdsig_pubkey *keys, int n, struct cmdsig_verifier **ret)
{
	struct cmdsig_verifier *v;

	if (n < 0 || n > CMDSIG_KEYS_MAX || (n > 0 && !keys))
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		v->keys[i] = keys[i];
		cmdsig_key_id(keys[i].raw, v->keys[i].id); /* never trust a caller's id */
		v->pkeys[i] = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, keys[i].raw,
		                                          CMDSIG_PUBKEY_LEN);
		if (!v->pkeys[i]) {
			ERR_clear_error();
			v->n = i;
			cmdsig_verifier_free(v);
			return -EINVAL;
		}
	}
	v->n = n;
	*ret = v;
	return 0;
}

struct cmdsig_verifier *cmdsig_verifier_free(struct cmdsig_verifier *v)
{
	if (v) {
		for (int i = 0; i < v->n; i++)
			EVP_PKEY_free(v->pkeys[i]);
		free(v);
	}
	return NULL;
}

static bool key_id_valid(const char *s, size_t len)
{
	if (len != CMDSIG_KEY_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

enum cmdsig_verdict cmdsig_verify(const struct cmdsig_verifier *v, const void *payload, size_t len,
                                  const char *sig, size_t sig_len, const char *key_id,
                                  size_t key_id_len, char *err, size_t err_size)
{
	uint8_t raw[CMDSIG_SIG_LEN];
	EVP_MD_CTX *ctx = NULL;
	enum cmdsig_verdict verdict = CMDSIG_BAD_SIGNATURE;
	int i;

	if (!sig || !key_id) {
		set_err(err, err_size, "not signed (no %s)",
		        !sig ? CMDSIG_PROP_SIG : CMDSIG_PROP_KEY_ID);
		goto out;
	}
	if (!key_id_valid(key_id, key_id_len)) {
		set_err(err, err_size, "%s is not %d lowercase hex characters", CMDSIG_PROP_KEY_ID,
		        CMDSIG_KEY_ID_LEN);
		goto out;
	}
	if (b64_decode_exact(sig, sig_len, raw, sizeof(raw)) < 0) {
		set_err(err, err_size, "%s is not the base64 of a %d-byte signature",
		        CMDSIG_PROP_SIG, CMDSIG_SIG_LEN);
		goto out;
	}
	for (i = 0; i < v->n; i++)
		if (memcmp(v->keys[i].id, key_id, CMDSIG_KEY_ID_LEN) == 0)
			break;
	if (i == v->n) {
		set_err(err, err_size, "key id %.*s is not trusted", CMDSIG_KEY_ID_LEN, key_id);
		verdict = CMDSIG_UNKNOWN_KEY;
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, v->pkeys[i]) != 1 ||
	    EVP_DigestVerify(ctx, raw, sizeof(raw), payload, len) != 1) {
		ERR_clear_error();
		set_err(err, err_size, "signature does not verify with key %s", v->keys[i].id);
		goto out;
	}
	verdict = CMDSIG_OK;
out:
	EVP_MD_CTX_free(ctx);
	return verdict;
}
