/* SPDX-License-Identifier: MIT */
/*
 * crypto: the keys and certificates of cradle-sim, made once per process (sim->crypto).
 *
 * One device RSA key shared by every simulated phone (its PKCS#1 public PEM is what
 * GetValue DevicePublicKey returns, its certificate is the TLS server identity), and one
 * root/host pair standing in for "the host that already paired", used to build the pair
 * records of pre-paired devices. One SSL_CTX serves every TLS session (session and service):
 * building a context per connection would cost far more than the handshake itself.
 *
 * Ownership: struct crypto is owned by the device half (devport_init/devport_free);
 * everything it points to lives until then. Loop thread only. Depends on nothing in sim/.
 */
#ifndef CRADLE_SIM_CRYPTO_H
#define CRADLE_SIM_CRYPTO_H

#include <stddef.h>

#include <openssl/ssl.h>
#include <plist/plist.h>

struct crypto {
	EVP_PKEY *device_key;
	X509 *device_cert;    /* signed by root, over device_key */
	char *device_pub_pem; /* "-----BEGIN RSA PUBLIC KEY-----" (PKCS#1), NUL-terminated */
	size_t device_pub_len;
	EVP_PKEY *root_key;
	X509 *root_cert; /* self-signed CA */
	EVP_PKEY *host_key;
	X509 *host_cert;  /* signed by root */
	char host_id[40]; /* the HostID of the pre-paired host, an uppercase UUID */
	/* PEM texts for pair records, encoded once (500 records at start-up) */
	char *pem_host_cert, *pem_host_key, *pem_root_cert, *pem_root_key, *pem_device_cert;
	size_t len_host_cert, len_host_key, len_root_cert, len_root_key, len_device_cert;
	SSL_CTX *ctx; /* server context: TLS 1.0+, security level 0, no client cert */
};

/* 0 or -errno (-EIO when OpenSSL fails; its error queue is logged). */
int crypto_new(struct crypto **ret);
/* NULL-safe; returns NULL. */
struct crypto *crypto_free(struct crypto *c);

/* PEM text of a certificate / private key, malloc'ed and NUL-terminated. NULL on failure. */
char *crypto_cert_pem(X509 *cert, size_t *ret_len);
char *crypto_key_pem(EVP_PKEY *key, size_t *ret_len);

/* The pair record a real pairing leaves in usbmuxd (HostID, SystemBUID = buid, the PEM keys
 * and certificates, a random EscrowBag, WiFiMACAddress = wifi). Caller frees; NULL when c is
 * NULL or on ENOMEM. */
plist_t crypto_pair_record(const struct crypto *c, const char *buid, const char *wifi);

/* A random uppercase UUID string (36 chars + NUL) into buf of at least 37 bytes. */
void crypto_uuid(char *buf, size_t size);

#endif
