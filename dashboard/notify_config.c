/* SPDX-License-Identifier: MIT */
/*
 * notify_config: the receivers of the configuration (notify.h): the custom conftab type of the
 * keys receiver1..receiver8 ("NAME TYPE URL [option=value ...]", dashboard/README.md
 * "Notifications"), its dump with the secrets masked, and which rules a receiver takes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "conftab.h"
#include "notify.h"
#include "parse.h"

static const char *const type_names[] = {
	[DASH_RECEIVER_NONE] = "",       [DASH_RECEIVER_WEBHOOK] = "webhook",
	[DASH_RECEIVER_SLACK] = "slack", [DASH_RECEIVER_TEAMS] = "teams",
	[DASH_RECEIVER_EMAIL] = "email",
};

const char *const notify_rules[] = { "backup_stale", "device_missing", "agent_offline",
	                             "site_network", NULL };

static bool name_valid(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

static int set_str(struct conftab_parser *p, const struct conftab_key *k, const char *opt,
                   const char *v, char *dst, size_t size)
{
	if (strlen(v) >= size)
		return conftab_error(p, "'%s': %s is longer than %zu bytes", k->name, opt,
		                     size - 1);
	snprintf(dst, size, "%s", v);
	return 0;
}

static bool rule_known(const char *name)
{
	for (size_t i = 0; notify_rules[i]; i++)
		if (strcmp(notify_rules[i], name) == 0)
			return true;
	return false;
}

static int rules_parse(struct conftab_parser *p, const struct conftab_key *k, const char *v,
                       struct dash_receiver *r)
{
	char tmp[sizeof(r->rules)], *save = NULL, *item;

	if (set_str(p, k, "rules", v, tmp, sizeof(tmp)) < 0)
		return -EINVAL;
	for (item = strtok_r(tmp, ",", &save); item; item = strtok_r(NULL, ",", &save))
		if (!rule_known(item))
			return conftab_error(p,
			                     "'%s': unknown rule '%.64s' (backup_stale, "
			                     "device_missing, agent_offline, site_network)",
			                     k->name, item);
	snprintf(r->rules, sizeof(r->rules), "%s", v);
	return 0;
}

static int option_parse(struct conftab_parser *p, const struct conftab_key *k, char *opt,
                        struct dash_receiver *r)
{
	char *eq = strchr(opt, '='), *v;
	uint64_t d;

	if (!eq)
		return conftab_error(p, "'%s': '%.80s' is not OPTION=VALUE", k->name, opt);
	*eq = '\0';
	v = eq + 1;
	if (strcmp(opt, "rules") == 0)
		return rules_parse(p, k, v, r);
	if (strcmp(opt, "digest") == 0) {
		if (parse_duration(v, &d) < 0 || d > 86400)
			return conftab_error(p, "'%s': bad digest '%.80s' (0s..24h)", k->name, v);
		r->digest_s = (int64_t)d;
		return 0;
	}
	if (strcmp(opt, "secret") == 0 && r->type == DASH_RECEIVER_WEBHOOK)
		return set_str(p, k, opt, v, r->secret, sizeof(r->secret));
	if (strcmp(opt, "cacert") == 0)
		return set_str(p, k, opt, v, r->cacert, sizeof(r->cacert));
	if (r->type == DASH_RECEIVER_EMAIL) {
		if (strcmp(opt, "from") == 0)
			return set_str(p, k, opt, v, r->from, sizeof(r->from));
		if (strcmp(opt, "to") == 0)
			return set_str(p, k, opt, v, r->to, sizeof(r->to));
		if (strcmp(opt, "user") == 0)
			return set_str(p, k, opt, v, r->user, sizeof(r->user));
		if (strcmp(opt, "password") == 0)
			return set_str(p, k, opt, v, r->password, sizeof(r->password));
	}
	return conftab_error(p, "'%s': unknown option '%.64s' for a %s receiver", k->name, opt,
	                     type_names[r->type]);
}

int notify_receiver_parse(struct conftab_parser *p, const struct conftab_key *k, char *v,
                          void *field)
{
	struct dash_receiver tmp = { 0 }, *r = field;
	char *save = NULL, *name, *type, *url, *opt;

	name = strtok_r(v, " \t", &save);
	if (!name) { /* "" = no receiver */
		*r = tmp;
		return 0;
	}
	type = strtok_r(NULL, " \t", &save);
	url = strtok_r(NULL, " \t", &save);
	if (!type || !url)
		return conftab_error(p, "'%s': expected NAME TYPE URL [option=value ...]", k->name);
	if (!name_valid(name) || strlen(name) >= sizeof(tmp.name))
		return conftab_error(p, "'%s': bad receiver name '%.80s' (letters, digits, _ - .)",
		                     k->name, name);
	snprintf(tmp.name, sizeof(tmp.name), "%s", name);
	for (int i = DASH_RECEIVER_WEBHOOK; i <= DASH_RECEIVER_EMAIL; i++)
		if (strcmp(type, type_names[i]) == 0)
			tmp.type = (enum dash_receiver_type)i;
	if (tmp.type == DASH_RECEIVER_NONE)
		return conftab_error(p,
		                     "'%s': unknown receiver type '%.40s' (webhook, slack, teams, "
		                     "email)",
		                     k->name, type);
	if (tmp.type == DASH_RECEIVER_EMAIL
	            ? strncmp(url, "smtp://", 7) != 0 && strncmp(url, "smtps://", 8) != 0
	            : strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return conftab_error(
		        p, "'%s': a %s receiver needs a %s URL, not '%.80s'", k->name, type,
		        tmp.type == DASH_RECEIVER_EMAIL ? "smtp(s)://" : "http(s)://", url);
	if (set_str(p, k, "the URL", url, tmp.url, sizeof(tmp.url)) < 0)
		return -EINVAL;
	while ((opt = strtok_r(NULL, " \t", &save)))
		if (option_parse(p, k, opt, &tmp) < 0)
			return -EINVAL;
	if (tmp.type == DASH_RECEIVER_WEBHOOK && strlen(tmp.secret) < 16)
		return conftab_error(p,
		                     "'%s': a webhook receiver needs secret=... (16 bytes or more: "
		                     "the HMAC key receivers verify with)",
		                     k->name);
	if (tmp.type == DASH_RECEIVER_EMAIL && (!tmp.from[0] || !tmp.to[0]))
		return conftab_error(p, "'%s': an email receiver needs from=... and to=...",
		                     k->name);
	*r = tmp;
	return 0;
}

void notify_receiver_dump(FILE *f, const struct conftab_key *k, const void *field)
{
	const struct dash_receiver *r = field;

	(void)k;
	if (r->type == DASH_RECEIVER_NONE) {
		fputs("\"\"", f);
		return;
	}
	fprintf(f, "%s %s %s", r->name, type_names[r->type], r->url);
	if (r->secret[0])
		fputs(" secret=********", f);
	if (r->rules[0])
		fprintf(f, " rules=%s", r->rules);
	if (r->digest_s)
		fprintf(f, " digest=%" PRId64 "s", r->digest_s);
	if (r->from[0])
		fprintf(f, " from=%s", r->from);
	if (r->to[0])
		fprintf(f, " to=%s", r->to);
	if (r->user[0])
		fprintf(f, " user=%s", r->user);
	if (r->password[0])
		fputs(" password=********", f);
	if (r->cacert[0])
		fprintf(f, " cacert=%s", r->cacert);
}

int notify_config_check(const struct dash_config *cfg, char *err, size_t errsz)
{
	for (int i = 0; i < DASH_RECEIVERS_MAX; i++)
		for (int j = 0; j < i; j++)
			if (cfg->receiver[i].type != DASH_RECEIVER_NONE &&
			    cfg->receiver[j].type != DASH_RECEIVER_NONE &&
			    strcmp(cfg->receiver[i].name, cfg->receiver[j].name) == 0) {
				if (err && errsz)
					snprintf(err, errsz,
					         "receiver%d and receiver%d are both named '%s'",
					         j + 1, i + 1, cfg->receiver[i].name);
				return -EINVAL;
			}
	return 0;
}

bool notify_receiver_takes(const struct dash_receiver *r, const char *rule)
{
	size_t n = strlen(rule);

	if (r->type == DASH_RECEIVER_NONE)
		return false;
	if (!r->rules[0])
		return true;
	for (const char *p = r->rules; (p = strstr(p, rule)); p += n)
		if ((p == r->rules || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

const char *notify_type_name(int type)
{
	return type >= DASH_RECEIVER_NONE && type <= DASH_RECEIVER_EMAIL ? type_names[type] : "";
}
