// SPDX-License-Identifier: MIT
/*
 * crypto: keys, certificates and the one TLS server context of cradle-sim.
 *
 * Why once per process: an RSA-2048 key takes 0.1-0.5 s to generate (random prime search; more
 * under ASan), and 500 simulated phones must start fast. The three keys are generated on three
 * threads at start-up (before the loop runs; nothing else is shared), PEM texts are encoded
 * once and copied into each pre-paired device's record. libimobiledevice 1.3.0
 * never verifies the device certificate, so every phone can share one key; what matters is that
 * the public key is a real PKCS#1 PEM (the client parses it with PEM_read_bio_RSAPublicKey when
 * it pairs) and that TLS is real, so the agent's TLS code path is the one it runs against a
 * phone. The server context accepts TLS 1.0 and up at security level 0, because the 1.3.0
 * client caps TLS at 1.0 for devices below iOS 10 and uses security level 0 itself.
 *
 * Also here: crypto_pair_record, the record a real pairing would leave in usbmuxd for an
 * already-trusted phone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "crypto.h"
#include "log.h"

#define CRYPTO_RSA_BITS   2048
#define CRYPTO_CERT_DAYS  3650
#define CRYPTO_ESCROW_LEN 32

static int crypto_fail(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	log_error("crypto: %s failed: %s", what, e ? buf : "unknown error");
	ERR_clear_error();
	return -EIO;
}

static void *crypto_keygen_thread(void *arg)
{
	EVP_PKEY **ret = arg;

	*ret = EVP_RSA_gen(CRYPTO_RSA_BITS);
	return NULL;
}

/* The three keys in parallel: prime search is random and each key alone takes 0.1-0.5 s. */
static int crypto_make_keys(struct crypto *c)
{
	EVP_PKEY **slots[3] = { &c->device_key, &c->root_key, &c->host_key };
	pthread_t th[2];
	bool started[2] = { false, false };
	int i;

	for (i = 0; i < 2; i++)
		started[i] = pthread_create(&th[i], NULL, crypto_keygen_thread, slots[i]) == 0;
	crypto_keygen_thread(slots[2]);
	for (i = 0; i < 2; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else
			crypto_keygen_thread(slots[i]);
	}
	return c->device_key && c->root_key && c->host_key ? 0 : -EIO;
}

static int crypto_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int r = 0;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext || !X509_add_ext(cert, ext, -1))
		r = -EIO;
	X509_EXTENSION_free(ext);
	return r;
}

/* A v3 certificate over key, signed by signer (self-signed when issuer is NULL). */
static X509 *crypto_make_cert(EVP_PKEY *key, const char *cn, long serial, X509 *issuer,
                              EVP_PKEY *signer, bool ca)
{
	X509 *cert = X509_new();
	X509_NAME *name;

	if (!cert)
		return NULL;
	if (!X509_set_version(cert, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(cert), serial) ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(cert), 60L * 60 * 24 * CRYPTO_CERT_DAYS) ||
	    !X509_set_pubkey(cert, key))
		goto fail;
	name = X509_get_subject_name(cert);
	if (cn && !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn,
	                                      -1, -1, 0))
		goto fail;
	if (!X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name))
		goto fail;
	if (crypto_add_ext(cert, issuer ? issuer : cert, NID_basic_constraints,
	                   ca ? "critical,CA:TRUE" : "critical,CA:FALSE") < 0)
		goto fail;
	if (crypto_add_ext(cert, issuer ? issuer : cert, NID_subject_key_identifier, "hash") < 0)
		goto fail;
	if (!ca && crypto_add_ext(cert, issuer, NID_key_usage,
	                          "critical,digitalSignature,keyEncipherment") < 0)
		goto fail;
	if (!X509_sign(cert, signer, EVP_sha256()))
		goto fail;
	return cert;
fail:
	X509_free(cert);
	return NULL;
}

static char *crypto_bio_string(BIO *bio, size_t *ret_len)
{
	char *data = NULL, *s;
	long n = BIO_get_mem_data(bio, &data);

	if (n < 0 || !data)
		return NULL;
	s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	if (ret_len)
		*ret_len = (size_t)n;
	return s;
}

char *crypto_cert_pem(X509 *cert, size_t *ret_len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (bio && PEM_write_bio_X509(bio, cert))
		s = crypto_bio_string(bio, ret_len);
	BIO_free(bio);
	return s;
}

char *crypto_key_pem(EVP_PKEY *key, size_t *ret_len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;

	/* "traditional" PKCS#1 "RSA PRIVATE KEY", as libimobiledevice writes pair records */
	if (bio && PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL))
		s = crypto_bio_string(bio, ret_len);
	BIO_free(bio);
	return s;
}

/* PKCS#1 "RSA PUBLIC KEY" PEM through the OpenSSL 3 encoder (no deprecated RSA API). */
static char *crypto_pub_pkcs1_pem(EVP_PKEY *key, size_t *ret_len)
{
	OSSL_ENCODER_CTX *ectx;
	unsigned char *data = NULL;
	size_t len = 0;
	char *s = NULL;

	ectx = OSSL_ENCODER_CTX_new_for_pkey(key, OSSL_KEYMGMT_SELECT_PUBLIC_KEY, "PEM",
	                                     "type-specific", NULL);
	if (!ectx)
		return NULL;
	if (OSSL_ENCODER_to_data(ectx, &data, &len) && data) {
		s = malloc(len + 1);
		if (s) {
			memcpy(s, data, len);
			s[len] = '\0';
			*ret_len = len;
		}
	}
	OPENSSL_free(data);
	OSSL_ENCODER_CTX_free(ectx);
	return s;
}

void crypto_uuid(char *buf, size_t size)
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		memset(b, 0x5a, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(buf, size, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

static SSL_CTX *crypto_server_ctx(struct crypto *c)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_security_level(ctx, 0);
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") ||
	    !SSL_CTX_use_certificate(ctx, c->device_cert) ||
	    !SSL_CTX_use_PrivateKey(ctx, c->device_key) || !SSL_CTX_check_private_key(ctx)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* The client never resumes: no session cache, no TLS 1.3 tickets (saves two records
	 * per handshake and keeps the StopSession shutdown exchange short). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

int crypto_new(struct crypto **ret)
{
	struct crypto *c = calloc(1, sizeof(*c));
	const char *what = "allocation";
	int r = -ENOMEM;

	if (!c)
		goto out;
	r = -EIO;
	what = "RSA key generation";
	if (crypto_make_keys(c) < 0)
		goto out;
	what = "certificates";
	c->root_cert = crypto_make_cert(c->root_key, "cradle-sim root", 0, NULL, c->root_key, true);
	if (!c->root_cert)
		goto out;
	c->host_cert = crypto_make_cert(c->host_key, "cradle-sim host", 1, c->root_cert,
	                                c->root_key, false);
	c->device_cert = crypto_make_cert(c->device_key, "cradle-sim device", 2, c->root_cert,
	                                  c->root_key, false);
	if (!c->host_cert || !c->device_cert)
		goto out;
	what = "PKCS#1 public key encoding";
	c->device_pub_pem = crypto_pub_pkcs1_pem(c->device_key, &c->device_pub_len);
	if (!c->device_pub_pem)
		goto out;
	what = "PEM encoding";
	c->pem_host_cert = crypto_cert_pem(c->host_cert, &c->len_host_cert);
	c->pem_host_key = crypto_key_pem(c->host_key, &c->len_host_key);
	c->pem_root_cert = crypto_cert_pem(c->root_cert, &c->len_root_cert);
	c->pem_root_key = crypto_key_pem(c->root_key, &c->len_root_key);
	c->pem_device_cert = crypto_cert_pem(c->device_cert, &c->len_device_cert);
	if (!c->pem_host_cert || !c->pem_host_key || !c->pem_root_cert || !c->pem_root_key ||
	    !c->pem_device_cert)
		goto out;
	what = "TLS server context";
	c->ctx = crypto_server_ctx(c);
	if (!c->ctx)
		goto out;
	crypto_uuid(c->host_id, sizeof(c->host_id));
	*ret = c;
	c = NULL;
	r = 0;
out:
	if (r < 0)
		crypto_fail(what);
	crypto_free(c);
	return r;
}

struct crypto *crypto_free(struct crypto *c)
{
	if (!c)
		return NULL;
	SSL_CTX_free(c->ctx);
	free(c->device_pub_pem);
	free(c->pem_host_cert);
	free(c->pem_host_key);
	free(c->pem_root_cert);
	free(c->pem_root_key);
	free(c->pem_device_cert);
	X509_free(c->device_cert);
	X509_free(c->host_cert);
	X509_free(c->root_cert);
	EVP_PKEY_free(c->device_key);
	EVP_PKEY_free(c->host_key);
	EVP_PKEY_free(c->root_key);
	free(c);
	return NULL;
}

plist_t crypto_pair_record(const struct crypto *c, const char *buid, const char *wifi)
{
	char escrow[CRYPTO_ESCROW_LEN];
	plist_t rec;

	if (!c)
		return NULL;
	rec = plist_new_dict();
	if (!rec)
		return NULL;
	plist_dict_set_item(rec, "HostID", plist_new_string(c->host_id));
	plist_dict_set_item(rec, "SystemBUID", plist_new_string(buid));
	plist_dict_set_item(rec, "HostCertificate",
	                    plist_new_data(c->pem_host_cert, c->len_host_cert));
	plist_dict_set_item(rec, "HostPrivateKey",
	                    plist_new_data(c->pem_host_key, c->len_host_key));
	plist_dict_set_item(rec, "RootCertificate",
	                    plist_new_data(c->pem_root_cert, c->len_root_cert));
	plist_dict_set_item(rec, "RootPrivateKey",
	                    plist_new_data(c->pem_root_key, c->len_root_key));
	plist_dict_set_item(rec, "DeviceCertificate",
	                    plist_new_data(c->pem_device_cert, c->len_device_cert));
	if (RAND_bytes((unsigned char *)escrow, sizeof(escrow)) != 1)
		memset(escrow, 0x42, sizeof(escrow));
	plist_dict_set_item(rec, "EscrowBag", plist_new_data(escrow, sizeof(escrow)));
	plist_dict_set_item(rec, "WiFiMACAddress", plist_new_string(wifi));
	return rec;
}
