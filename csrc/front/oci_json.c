/*
 * `state`'s output: runc's shape (ociVersion, id, pid, status, bundle, rootfs, created, owner,
 * annotations), byte for byte what Python prints with runnc_py/oci/fastjson.dumps(..., indent=2)
 * -- two-space indent, "," at line ends, ": " after keys, `{}` for an empty object, and
 * strings escaped as json.encoder.encode_basestring_ascii does: \" \\ \b \f \n \r \t, every
 * other code point below 0x20 or from 0x7f up as lowercase \uXXXX, astral ones as a UTF-16
 * surrogate pair. jansson parsed the values (valid UTF-8, no NUL), but its writer escapes
 * differently (uppercase hex, 0x7f kept), hence this small writer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front.h"

#define OCI_VERSION "1.0.2"

struct out {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void put(struct out *o, const char *text, size_t len)
{
    if (o->failed)
        return;
    if (o->len + len + 1 > o->cap) {
        size_t cap = (o->cap ? o->cap * 2 : 1024) + len;
        char *buf = realloc(o->buf, cap);
        if (buf == NULL) {
            o->failed = true;
            return;
        }
        o->buf = buf;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, text, len);
    o->len += len;
    o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *text) { put(o, text, strlen(text)); }

static void put_u16(struct out *o, unsigned unit)
{
    char esc[16];
    snprintf(esc, sizeof(esc), "\\u%04x", unit & 0xffff);
    put(o, esc, 6);
}

/* One code point from valid UTF-8 (jansson checked it) at *P; advances *P. */
static unsigned next_code_point(const unsigned char **p)
{
    const unsigned char *s = *p;
    unsigned cp;
    int extra;
    if (s[0] < 0x80)
        cp = s[0], extra = 0;
    else if (s[0] < 0xe0)
        cp = s[0] & 0x1f, extra = 1;
    else if (s[0] < 0xf0)
        cp = s[0] & 0x0f, extra = 2;
    else
        cp = s[0] & 0x07, extra = 3;
    for (int i = 1; i <= extra; i++)
        cp = (cp << 6) | (s[i] & 0x3f);
    *p = s + 1 + extra;
    return cp;
}

static void put_string(struct out *o, const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    put(o, "\"", 1);
    while (*p) {
        const unsigned char *at = p;
        unsigned cp = next_code_point(&p);
        const char *esc = NULL;
        switch (cp) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        }
        if (esc != NULL) {
            puts_(o, esc);
        } else if (cp >= 0x10000) {
            cp -= 0x10000;
            put_u16(o, 0xd800 | (cp >> 10));
            put_u16(o, 0xdc00 | (cp & 0x3ff));
        } else if (cp < 0x20 || cp >= 0x7f) {
            put_u16(o, cp);
        } else {
            put(o, (const char *)at, 1);
        }
    }
    put(o, "\"", 1);
}

static void put_field(struct out *o, const char *key, const char *value, bool last)
{
    puts_(o, "  ");
    put_string(o, key);
    puts_(o, ": ");
    put_string(o, value);
    puts_(o, last ? "\n" : ",\n");
}

static void put_annotations(struct out *o, json_t *annotations)
{
    const char *key;
    json_t *value;
    size_t i = 0, n = json_object_size(annotations);
    puts_(o, "  \"annotations\": ");
    if (n == 0) {
        puts_(o, "{}\n");
        return;
    }
    puts_(o, "{\n");
    /* jansson keeps objects in insertion order (>= 2.8), as Python's dict does. */
    json_object_foreach(annotations, key, value) {
        puts_(o, "    ");
        put_string(o, key);
        puts_(o, ": ");
        put_string(o, json_string_value(value));
        puts_(o, ++i < n ? ",\n" : "\n");
    }
    puts_(o, "  }\n");
}

char *oci_state_json(const struct container *c, enum status status)
{
    struct out o = {0};
    char pid[32];
    snprintf(pid, sizeof(pid), "%lld", status == ST_STOPPED ? 0LL : c->pid);
    puts_(&o, "{\n");
    put_field(&o, "ociVersion", OCI_VERSION, false);
    put_field(&o, "id", c->id, false);
    puts_(&o, "  \"pid\": ");
    puts_(&o, pid);
    puts_(&o, ",\n");
    put_field(&o, "status", status_name(status), false);
    put_field(&o, "bundle", c->bundle, false);
    put_field(&o, "rootfs", c->rootfs, false);
    put_field(&o, "created", c->created, false);
    put_field(&o, "owner", c->owner, false);
    put_annotations(&o, c->annotations);
    puts_(&o, "}\n");
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}
