/* SPDX-License-Identifier: MIT */
/*
 * topics: the cradle/v1 topic map as code.
 *
 * Layout: cradle/v1/agent/{agent}/{status|meta|cmd|result|event} and
 * cradle/v1/agent/{agent}/device/{udid}/{state|event}. The agent id comes right after "agent/" so
 * that a few broker ACL patterns with %u cover every agent (proto/README.md, topic map)
 * (a type-first order, as in Sparkplug, would need one ACL line per type; docs/decisions.md).
 * Ids are validated with explicit character loops instead of regex.h: no allocation, no locale.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "topics.h"

static const char *const kind_names[_TOPICS_KIND_MAX] = {
	[TOPICS_STATUS] = "status",      [TOPICS_META] = "meta", [TOPICS_DEVICE_STATE] = "state",
	[TOPICS_DEVICE_EVENT] = "event", [TOPICS_CMD] = "cmd",   [TOPICS_RESULT] = "result",
	[TOPICS_AGENT_EVENT] = "event",
};

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

bool topics_agent_id_valid(const char *agent)
{
	size_t i;

	if (!agent || !is_lower_alnum(agent[0]))
		return false;
	for (i = 1; agent[i]; i++) {
		if (i >= TOPICS_AGENT_MAX - 1)
			return false;
		if (!is_lower_alnum(agent[i]) && agent[i] != '-')
			return false;
	}
	return i >= 3;
}

bool topics_udid_valid(const char *udid)
{
	size_t i;

	if (!udid || !is_alnum(udid[0]))
		return false;
	for (i = 1; udid[i]; i++) {
		if (i >= TOPICS_UDID_MAX - 1)
			return false;
		if (!is_alnum(udid[i]) && udid[i] != '-')
			return false;
	}
	return true;
}

bool topics_kind_has_udid(enum topics_kind kind)
{
	return kind == TOPICS_DEVICE_STATE || kind == TOPICS_DEVICE_EVENT;
}

const char *topics_kind_name(enum topics_kind kind)
{
	if ((unsigned)kind >= _TOPICS_KIND_MAX)
		return NULL;
	return kind_names[kind];
}

static int emit(char *buf, size_t size, enum topics_kind kind, const char *agent, const char *udid)
{
	int n;

	if (topics_kind_has_udid(kind))
		n = snprintf(buf, size, TOPICS_ROOT "/agent/%s/device/%s/%s", agent, udid,
		             kind_names[kind]);
	else
		n = snprintf(buf, size, TOPICS_ROOT "/agent/%s/%s", agent, kind_names[kind]);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= size)
		return -ENOBUFS;
	return 0;
}

int topics_build(char *buf, size_t size, enum topics_kind kind, const char *agent, const char *udid)
{
	if (!buf || (unsigned)kind >= _TOPICS_KIND_MAX || !topics_agent_id_valid(agent))
		return -EINVAL;
	if (topics_kind_has_udid(kind) && !topics_udid_valid(udid))
		return -EINVAL;
	return emit(buf, size, kind, agent, udid);
}

int topics_filter(char *buf, size_t size, enum topics_kind kind, const char *agent)
{
	if (!buf || (unsigned)kind >= _TOPICS_KIND_MAX)
		return -EINVAL;
	if (agent && !topics_agent_id_valid(agent))
		return -EINVAL;
	return emit(buf, size, kind, agent ? agent : "+", "+");
}

/* Copies the level starting at *p up to '/' or NUL into out (cap bytes); advances *p past it. */
static int take_level(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	size_t n = strcspn(s, "/");

	if (n == 0 || n >= cap)
		return -EINVAL;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + n + (s[n] == '/' ? 1 : 0);
	return s[n] == '/' ? 1 : 0; /* 1: more levels follow */
}

int topics_parse(const char *topic, enum topics_kind *ret_kind, char *ret_agent, char *ret_udid)
{
	static const char prefix[] = TOPICS_ROOT "/agent/";
	char agent[TOPICS_AGENT_MAX], udid[TOPICS_UDID_MAX] = "", level[16];
	const char *p;
	int more, k;

	if (!topic || !ret_kind || !ret_agent || strncmp(topic, prefix, sizeof(prefix) - 1) != 0)
		return -EINVAL;
	p = topic + sizeof(prefix) - 1;
	more = take_level(&p, agent, sizeof(agent));
	if (more != 1 || !topics_agent_id_valid(agent))
		return -EINVAL;
	more = take_level(&p, level, sizeof(level));
	if (more < 0)
		return -EINVAL;
	if (strcmp(level, "device") == 0) {
		if (more != 1 || take_level(&p, udid, sizeof(udid)) != 1 ||
		    !topics_udid_valid(udid))
			return -EINVAL;
		more = take_level(&p, level, sizeof(level));
		if (more != 0)
			return -EINVAL;
		for (k = 0; k < _TOPICS_KIND_MAX; k++)
			if (topics_kind_has_udid(k) && strcmp(level, kind_names[k]) == 0)
				break;
	} else {
		if (more != 0)
			return -EINVAL;
		for (k = 0; k < _TOPICS_KIND_MAX; k++)
			if (!topics_kind_has_udid(k) && strcmp(level, kind_names[k]) == 0)
				break;
	}
	if (k == _TOPICS_KIND_MAX)
		return -EINVAL;
	*ret_kind = k;
	strcpy(ret_agent, agent);
	if (ret_udid)
		strcpy(ret_udid, udid);
	return 0;
}
