/* SPDX-License-Identifier: MIT */
/*
 * cmdsig: Ed25519 signatures of commands (proto/COMMANDS.md, "Signed commands").
 *
 * The signature covers the exact payload bytes of the MQTT message (the command JSON as sent),
 * so nothing is canonicalised: the sender signs what it publishes and the agent verifies what
 * it received, before it parses anything. Signature and key id travel as two MQTT 5 user
 * properties next to the payload:
 *
 *   cradle-sig     base64 (RFC 4648, padded) of the 64-byte Ed25519 signature: 88 characters
 *   cradle-key-id  the signer's key id: 16 lowercase hex characters
 *
 * Key id = the first 8 bytes of SHA-256 over the raw 32-byte public key, in hex. It only picks
 * the key to try; trust comes from the key bytes, so a key id that names a trusted key but a
 * signature made by another key fails as a bad signature. Public keys are written as base64 of
 * the raw 32 bytes (44 characters, fits a config line); private keys are PEM files as written by
 * `openssl genpkey -algorithm ed25519`.
 *
 * OpenSSL 3 (EVP_PKEY_ED25519, EVP_DigestSign/EVP_DigestVerify with a NULL digest). No logging,
 * no global state: callable from any thread; a signer or verifier is used by one thread at a
 * time.
 */
#ifndef CRADLE_CMDSIG_H
#define CRADLE_CMDSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMDSIG_PROP_SIG    "cradle-sig"
#define CMDSIG_PROP_KEY_ID "cradle-key-id"

#define CMDSIG_PUBKEY_LEN     32 /* raw Ed25519 public key */
#define CMDSIG_PUBKEY_B64_LEN 44 /* its base64 text */
#define CMDSIG_SIG_LEN        64 /* raw Ed25519 signature */
#define CMDSIG_SIG_B64_LEN    88 /* its base64 text (the cradle-sig value) */
#define CMDSIG_KEY_ID_LEN     16 /* hex characters (the cradle-key-id value) */
#define CMDSIG_KEYS_MAX       16 /* trusted keys per verifier (= config list items) */
#define CMDSIG_ERR_MAX        160

/* A public key as the agent trusts it: raw bytes and the derived key id. */
struct cmdsig_pubkey {
	uint8_t raw[CMDSIG_PUBKEY_LEN];
	char id[CMDSIG_KEY_ID_LEN + 1];
};

/* Why a signature was refused; maps to the rejection reasons of the same names. */
enum cmdsig_verdict {
	CMDSIG_OK,
	CMDSIG_BAD_SIGNATURE, /* missing, malformed, or does not verify with the named key */
	CMDSIG_UNKNOWN_KEY,   /* well-formed, but the key id is not among the trusted keys */
};

/* Writes the key id of raw (32 bytes) to id (CMDSIG_KEY_ID_LEN + 1 bytes, NUL-terminated). */
void cmdsig_key_id(const uint8_t *raw, char *id);

/*
 * Parses a public key in its text form: exactly 44 characters of canonical padded base64 that
 * decode to 32 bytes (len bytes of text, need not be NUL-terminated). Fills *ret (raw and id).
 * 0 or -EINVAL.
 */
int cmdsig_pubkey_parse(const char *text, size_t len, struct cmdsig_pubkey *ret);

/* Writes the text form of k to out (CMDSIG_PUBKEY_B64_LEN + 1 bytes). */
void cmdsig_pubkey_format(const struct cmdsig_pubkey *k, char *out);

/* ---- signing (the command client, tests) ---- */

struct cmdsig_signer;

/*
 * Loads an Ed25519 private key from a PEM file at path (borrowed). 0, -ENOENT/-EACCES/... when
 * it cannot be read, -EINVAL when it is not an Ed25519 private key; err (may be NULL) gets a
 * message naming the file.
 */
int cmdsig_signer_load(const char *path, struct cmdsig_signer **ret, char *err, size_t err_size);
/* A fresh random key (tests). 0 or -ENOMEM/-EIO. */
int cmdsig_signer_generate(struct cmdsig_signer **ret);
struct cmdsig_signer *cmdsig_signer_free(struct cmdsig_signer *s);
/* The signer's public key (pointer valid as long as s). */
const struct cmdsig_pubkey *cmdsig_signer_pubkey(const struct cmdsig_signer *s);
/*
 * Signs len bytes of payload; writes the base64 signature to sig (CMDSIG_SIG_B64_LEN + 1 bytes,
 * NUL-terminated). 0 or -EIO.
 */
int cmdsig_sign(const struct cmdsig_signer *s, const void *payload, size_t len, char *sig);

/* ---- verifying (the agent) ---- */

struct cmdsig_verifier;

/* keys: n (0..CMDSIG_KEYS_MAX) trusted keys, copied. 0, -EINVAL or -ENOMEM. */
int cmdsig_verifier_new(const struct cmdsig_pubkey *keys, int n, struct cmdsig_verifier **ret);
struct cmdsig_verifier *cmdsig_verifier_free(struct cmdsig_verifier *v);

/*
 * Checks the signature sig (sig_len bytes of base64 text) with key id key_id (key_id_len
 * bytes) over len bytes of payload. All borrowed; NULL sig or key_id = absent (a bad
 * signature). Malformed text is a bad signature, a well-formed key id not in the list is an
 * unknown key. err (may be NULL) gets a short reason text.
 */
enum cmdsig_verdict cmdsig_verify(const struct cmdsig_verifier *v, const void *payload, size_t len,
                                  const char *sig, size_t sig_len, const char *key_id,
                                  size_t key_id_len, char *err, size_t err_size);

#endif
