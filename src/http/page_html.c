/*
 * The status page's markup (page_html.h): one function per section, each writing into
 * the same capped buffer and leaving the check of its cap to the end.
 */
#include "http/page_html.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/html.h"

static const char STYLE[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}"
    "h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.5em 0 .4em}"
    "table{border-collapse:collapse;margin:.3em 0}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}"
    "thead th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".dead,.paused_auth,.paused_store{color:#a00;font-weight:bold}"
    ".paused_remote,.retrying,.waiting{color:#a60}.done,.running{color:#070}"
    ".words{max-width:40em;word-break:break-word}form.inline{display:inline;margin:0}"
    "header form{margin:.5em 0}pre{background:#f6f6f6;padding:.6em;overflow:auto}"
    ".muted{color:#777}";

static void head(struct buf *b, const char *title)
{
        html_raw(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width\"><title>");
        html_text(b, title);
        html_raw(b, "</title><style>");
        html_raw(b, STYLE);
        html_raw(b, "</style></head>\n<body>\n");
}

static const char *jtext(const json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static int64_t jint(const json_t *o, const char *key)
{
        return (int64_t)json_integer_value(json_object_get(o, key));
}

/* A cell holding a number, right-aligned. */
static void cell_n(struct buf *b, const char *count, int64_t n)
{
        html_raw(b, "<td class=\"n\"");
        if (count) {
                html_raw(b, " data-count=\"");
                html_text(b, count);
                html_raw(b, "\"");
        }
        html_raw(b, ">");
        html_textf(b, "%lld", (long long)n);
        html_raw(b, "</td>");
}

/* A cell holding a text (escaped), with an optional class. */
static void cell(struct buf *b, const char *cls, const char *text)
{
        html_raw(b, "<td");
        if (cls) {
                html_raw(b, " class=\"");
                html_text(b, cls);
                html_raw(b, "\"");
        }
        html_raw(b, ">");
        html_text(b, text ? text : "-");
        html_raw(b, "</td>");
}

static void cell_time(struct buf *b, int64_t ms)
{
        html_raw(b, "<td>");
        html_time(b, ms);
        html_raw(b, "</td>");
}

static void order_link(struct buf *b, const char *order_id)
{
        html_raw(b, "<a href=\"/?order=");
        html_text(b, order_id); /* ids are [A-Za-z0-9_-]: nothing to %-encode */
        html_raw(b, "\">");
        html_text(b, order_id);
        html_raw(b, "</a>");
}

/* The Retry button: POST /retry with the order, the sink and the CSRF token. */
static void retry_form(struct buf *b, const struct page_view *v, const char *order_id,
                       const char *sink)
{
        html_raw(b, "<form class=\"inline\" method=\"post\" action=\"/retry\">"
                    "<input type=\"hidden\" name=\"order\" value=\"");
        html_text(b, order_id);
        html_raw(b, "\"><input type=\"hidden\" name=\"sink\" value=\"");
        html_text(b, sink);
        html_raw(b, "\"><input type=\"hidden\" name=\"csrf\" value=\"");
        html_text(b, v->csrf);
        html_raw(b, "\"><button type=\"submit\">Retry</button></form>");
}

static void header(struct buf *b, const struct page_view *v)
{
        html_raw(b, "<header><h1>orderbridge</h1>"
                    "<form method=\"get\" action=\"/\"><label>Order id "
                    "<input name=\"order\" maxlength=\"64\" pattern=\"[A-Za-z0-9_\\-]+\" "
                    "required value=\"");
        html_text(b, v->order_id);
        html_raw(b, "\"></label> <button type=\"submit\">Show</button></form>"
                    "<p class=\"muted\">As of ");
        html_time(b, v->now_ms);
        html_raw(b, " &middot; <a href=\"/\">refresh</a></p></header>\n");
}

static void queue(struct buf *b, const struct page_view *v)
{
        html_raw(b, "<section id=\"queue\"><h2>Queue</h2>");
        if (v->n_sinks == 0) {
                html_raw(b, "<p>No sink is enabled and none holds work.</p></section>\n");
                return;
        }
        html_raw(b, "<table><thead><tr><th>sink</th><th>pending</th><th>in flight</th>"
                    "<th>retrying</th><th>waiting</th><th>delivered</th><th>dead</th>"
                    "<th>oldest owed</th><th>state</th></tr></thead><tbody>");
        for (size_t i = 0; i < v->n_sinks; i++) {
                const struct page_sink *s = &v->sinks[i];
                const char *state = s->running ? sinkstate_pause_name(s->state.pause)
                                               : "not running";
                const char *counted;
                int64_t n;

                html_raw(b, "<tr id=\"queue-");
                html_text(b, s->name);
                html_raw(b, "\"><th>");
                html_text(b, s->name);
                html_raw(b, "</th>");
                for (size_t j = 0; (counted = store_counts_nth(&s->counts, j, &n)); j++)
                        cell_n(b, counted, n);
                html_raw(b, "<td data-count=\"oldest\">");
                if (s->counts.oldest_pending_at > 0) {
                        html_duration(b, v->now_ms - s->counts.oldest_pending_at);
                        html_raw(b, " <span class=\"muted\">(since ");
                        html_time(b, s->counts.oldest_pending_at);
                        html_raw(b, ")</span>");
                } else {
                        html_raw(b, "-");
                }
                html_raw(b, "</td>");
                cell(b, s->running ? state : "muted", state);
                html_raw(b, "</tr>");
        }
        html_raw(b, "</tbody></table></section>\n");
}

static void paused(struct buf *b, const struct page_view *v)
{
        size_t n = 0;

        html_raw(b, "<section id=\"paused\"><h2>Paused sinks</h2>");
        for (size_t i = 0; i < v->n_sinks; i++) {
                const struct page_sink *s = &v->sinks[i];

                if (!s->running || s->state.pause == SINK_RUNNING)
                        continue;
                if (n++ == 0)
                        html_raw(b, "<table><thead><tr><th>sink</th><th>why</th>"
                                    "<th>reason</th><th>since</th><th>until</th>"
                                    "<th>failed passes</th></tr></thead><tbody>");
                html_raw(b, "<tr data-sink=\"");
                html_text(b, s->name);
                html_raw(b, "\"><th>");
                html_text(b, s->name);
                html_raw(b, "</th>");
                cell(b, sinkstate_pause_name(s->state.pause), sinkstate_pause_name(s->state.pause));
                cell(b, "words", s->state.reason);
                cell_time(b, s->state.paused_at_ms);
                html_raw(b, "<td>");
                html_time(b, s->state.paused_until_ms);
                if (s->state.paused_until_ms > v->now_ms) {
                        html_raw(b, " <span class=\"muted\">(in ");
                        html_duration(b, s->state.paused_until_ms - v->now_ms);
                        html_raw(b, ")</span>");
                }
                html_raw(b, "</td>");
                cell_n(b, NULL, s->state.failures);
                html_raw(b, "</tr>");
        }
        html_raw(b, n ? "</tbody></table></section>\n" : "<p>None.</p></section>\n");
}

static void dead_letters(struct buf *b, const struct page_view *v)
{
        html_raw(b, "<section id=\"dead\"><h2>Dead letters</h2>");
        if (v->n_dead == 0) {
                html_raw(b, "<p>None.</p></section>\n");
                return;
        }
        if ((int64_t)v->n_dead < v->dead_total)
                html_textf(b, "The newest %zu of %lld. ", v->n_dead, (long long)v->dead_total);
        html_raw(b, "<table><thead><tr><th>order</th><th>sink</th><th>died</th>"
                    "<th>attempts</th><th>the remote's words</th><th></th></tr></thead><tbody>");
        for (size_t i = 0; i < v->n_dead; i++) {
                const struct page_dead *d = &v->dead[i];

                html_raw(b, "<tr class=\"dead-letter\" data-order=\"");
                html_text(b, d->order_id);
                html_raw(b, "\" data-sink=\"");
                html_text(b, d->sink);
                html_raw(b, "\"><td>");
                order_link(b, d->order_id);
                html_raw(b, "</td>");
                cell(b, NULL, d->sink);
                cell_time(b, d->at);
                cell_n(b, NULL, d->attempts);
                cell(b, "words", d->reason);
                html_raw(b, "<td>");
                retry_form(b, v, d->order_id, d->sink);
                html_raw(b, "</td></tr>");
        }
        html_raw(b, "</tbody></table></section>\n");
}

static void order_deliveries(struct buf *b, const struct page_view *v, const json_t *rows)
{
        size_t i;
        json_t *row;

        html_raw(b, "<h3>Deliveries</h3><table><thead><tr><th>sink</th><th>state</th>"
                    "<th>wanted rev</th><th>delivered rev</th><th>attempts</th>"
                    "<th>next try</th><th>last error</th><th></th></tr></thead><tbody>");
        json_array_foreach(rows, i, row)
        {
                const char *sink = jtext(row, "sink"), *state = jtext(row, "state");

                html_raw(b, "<tr id=\"delivery-");
                html_text(b, sink);
                html_raw(b, "\" data-state=\"");
                html_text(b, state);
                html_raw(b, "\"><th>");
                html_text(b, sink);
                html_raw(b, "</th>");
                cell(b, state, state);
                cell_n(b, NULL, jint(row, "want_rev"));
                cell_n(b, NULL, jint(row, "done_rev"));
                cell_n(b, NULL, jint(row, "attempts"));
                cell_time(b, jint(row, "next_at"));
                cell(b, "words", jtext(row, "last_error"));
                html_raw(b, "<td>");
                if (state && sink && (!strcmp(state, "dead") || !strcmp(state, "retrying")))
                        retry_form(b, v, v->order_id, sink);
                html_raw(b, "</td></tr>");
        }
        html_raw(b, "</tbody></table>");
}

static void order_history(struct buf *b, const json_t *rows)
{
        size_t i;
        json_t *row;

        html_raw(b, "<h3>Snapshots received</h3><table><thead><tr><th>rev</th><th>version</th>"
                    "<th>received</th><th>from</th><th>outcome</th></tr></thead><tbody>");
        json_array_foreach(rows, i, row)
        {
                html_raw(b, "<tr>");
                cell_n(b, NULL, jint(row, "rev"));
                if (json_is_integer(json_object_get(row, "version")))
                        cell_n(b, NULL, jint(row, "version"));
                else
                        cell(b, NULL, NULL);
                cell_time(b, jint(row, "received_at"));
                cell(b, NULL, jtext(row, "source"));
                cell(b, NULL, jtext(row, "outcome"));
                html_raw(b, "</tr>");
        }
        html_raw(b, "</tbody></table>");
}

static void order_attempts(struct buf *b, const json_t *rows)
{
        size_t i;
        json_t *row;

        html_raw(b, "<h3>Attempts (newest first)</h3>");
        if (json_array_size(rows) == 0) {
                html_raw(b, "<p>None yet.</p>");
                return;
        }
        html_raw(b, "<table><thead><tr><th>at</th><th>sink</th><th>rev</th><th>outcome</th>"
                    "<th>detail</th></tr></thead><tbody>");
        json_array_foreach(rows, i, row)
        {
                html_raw(b, "<tr>");
                cell_time(b, jint(row, "at"));
                cell(b, NULL, jtext(row, "sink"));
                cell_n(b, NULL, jint(row, "rev"));
                cell(b, jtext(row, "outcome"), jtext(row, "outcome"));
                cell(b, "words", jtext(row, "detail"));
                html_raw(b, "</tr>");
        }
        html_raw(b, "</tbody></table>");
}

static void order_links(struct buf *b, const json_t *rows)
{
        size_t i;
        json_t *row;

        if (json_array_size(rows) == 0)
                return;
        html_raw(b, "<h3>Remote records</h3><table><thead><tr><th>kind</th><th>id</th></tr>"
                    "</thead><tbody>");
        json_array_foreach(rows, i, row)
        {
                html_raw(b, "<tr>");
                cell(b, NULL, jtext(row, "kind"));
                cell(b, NULL, jtext(row, "remote_id"));
                html_raw(b, "</tr>");
        }
        html_raw(b, "</tbody></table>");
}

static void order(struct buf *b, const struct page_view *v)
{
        const json_t *o = v->order;
        char *snapshot;

        html_raw(b, "<section id=\"order\"><h2>Order ");
        html_text(b, v->order_id);
        html_raw(b, "</h2>");
        if (!o) {
                html_raw(b, "<p>No such order in the store.</p></section>\n");
                return;
        }
        html_raw(b, "<p>Latest snapshot: rev ");
        html_textf(b, "%lld", (long long)jint(o, "rev"));
        html_raw(b, ", received ");
        html_time(b, jint(o, "received_at"));
        html_raw(b, ".</p>");
        order_deliveries(b, v, json_object_get(o, "deliveries"));
        order_history(b, json_object_get(o, "history"));
        order_attempts(b, json_object_get(o, "attempts"));
        order_links(b, json_object_get(o, "links"));
        snapshot = json_dumps(json_object_get(o, "snapshot"), JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                                                       JSON_ENCODE_ANY);
        html_raw(b, "<details><summary>The snapshot</summary><pre>");
        html_text(b, snapshot);
        html_raw(b, "</pre></details></section>\n");
        free(snapshot);
}

int page_html_render(const struct page_view *v, struct buf *out)
{
        head(out, v->order_id ? "orderbridge: order" : "orderbridge");
        header(out, v);
        if (v->order_id)
                order(out, v);
        queue(out, v);
        paused(out, v);
        dead_letters(out, v);
        html_raw(out, "</body></html>\n");
        return out->toobig ? -EMSGSIZE : 0;
}

int page_html_error(struct buf *out, unsigned status, const char *field, const char *message)
{
        const char *what = status == 400 ? "Bad Request" : status == 404 ? "Not Found" : "Error";

        head(out, "orderbridge: error");
        html_raw(out, "<h1>");
        html_textf(out, "%u %s", status, what);
        html_raw(out, "</h1><p class=\"error\">");
        if (field) {
                html_raw(out, "<code>");
                html_text(out, field);
                html_raw(out, "</code>: ");
        }
        html_text(out, message);
        html_raw(out, "</p><p><a href=\"/\">Back to the status page</a></p></body></html>\n");
        return out->toobig ? -EMSGSIZE : 0;
}
