package collect

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/contrailhq/contrail/internal/enrich"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/tenant"
)

// kind is what an endpoint expects in its body.
type kind uint8

const (
	kindSingle kind = iota // one event; its type is the endpoint's
	kindBatch              // {"batch":[...]}
	kindBeacon             // a batch or a single event with its own type
	kindPixel              // GET with query parameters, answers a GIF
	kindForm               // a web form's post, answered for a browser (form.go)
)

type endpoint struct {
	name string
	kind kind
	typ  event.Type
}

// Register mounts the collection endpoints on mux.
func (c *Collector) Register(mux *http.ServeMux) {
	single := map[string]event.Type{
		"track": event.TypeTrack, "page": event.TypePage, "screen": event.TypeScreen,
		"identify": event.TypeIdentify, "alias": event.TypeAlias, "group": event.TypeGroup,
	}
	for name, typ := range single {
		ep := endpoint{name: name, kind: kindSingle, typ: typ}
		mux.Handle("POST /v1/"+name, c.handler(ep))
		mux.Handle("POST /v1/"+name[:1], c.handler(ep)) // browser short path
	}
	batch := endpoint{name: "batch", kind: kindBatch}
	mux.Handle("POST /v1/batch", c.handler(batch))
	mux.Handle("POST /v1/b", c.handler(batch))
	mux.Handle("POST /v1/beacon", c.handler(endpoint{name: "beacon", kind: kindBeacon}))
	mux.Handle("GET /v1/pixel/track", c.handler(endpoint{name: "pixel", kind: kindPixel, typ: event.TypeTrack}))
	mux.Handle("GET /v1/pixel/page", c.handler(endpoint{name: "pixel", kind: kindPixel, typ: event.TypePage}))
	mux.Handle("POST /v1/form/{formId}", c.handler(endpoint{name: "form", kind: kindForm, typ: event.TypeForm}))
	mux.HandleFunc("OPTIONS /v1/", func(w http.ResponseWriter, r *http.Request) {
		cors(w, r)
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	})
}

// cors lets browsers on any site send events, with credentials, as
// analytics.js does.
func cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, Authorization")
	h.Add("Vary", "Origin")
}

// request is the state of one collection request.
type request struct {
	ep         endpoint
	receivedAt time.Time
	tenant     *tenant.Tenant
	peerIP     string
	body       []byte
	results    []result
	accepted   int
}

type result struct {
	messageID string
	code      Code
	msg       string
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (c *Collector) handler(ep endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := c.now()
		cors(w, r)
		req := &request{ep: ep, receivedAt: start.UTC().Truncate(time.Microsecond), peerIP: c.clientIP(r)}
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		var status int
		if ep.kind == kindForm {
			status = c.serveForm(w, r, req, buf)
		} else {
			status = c.serve(w, r, req, buf)
		}
		if buf.Cap() <= 4<<20 {
			bufPool.Put(buf)
		}
		c.metrics.requests.WithLabelValues(ep.name, strconv.Itoa(status)).Inc()
		c.metrics.requestSeconds.WithLabelValues(ep.name).Observe(c.now().Sub(start).Seconds())
	})
}

// serve handles one request and returns the status it answered.
func (c *Collector) serve(w http.ResponseWriter, r *http.Request, req *request, buf *bytes.Buffer) int {
	if e := c.process(r, req, buf); e != nil {
		return c.refused(w, req, e)
	}
	if req.ep.kind == kindPixel && req.accepted == len(req.results) {
		w.Header().Set("Content-Type", "image/gif")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(transparentGIF)
		return http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(appendResults(buf.Bytes()[:0], req))
	return http.StatusOK
}

// refused counts a refused request and answers it with e.
func (c *Collector) refused(w http.ResponseWriter, req *request, e *reqError) int {
	tenantID := "unknown"
	if req.tenant != nil {
		tenantID = req.tenant.ID
	}
	c.metrics.refusedRequests.WithLabelValues(tenantID, string(e.code)).Inc()
	if req.accepted > 0 && req.tenant != nil { // valid events refused with the request
		c.metrics.rejectedEvents.WithLabelValues(tenantID, string(e.code)).Add(float64(req.accepted))
	}
	return writeError(w, e)
}

// process authenticates, reads, decodes, admits and stores the request's events.
func (c *Collector) process(r *http.Request, req *request, buf *bytes.Buffer) *reqError {
	if e := c.authBasic(r, req); e != nil {
		return e
	}
	var raws []string
	var defaults *batchDefaults
	if req.ep.kind == kindPixel {
		raw, key, e := pixelEvent(r.URL.Query())
		if e != nil {
			return e
		}
		if req.tenant == nil {
			if e := c.authBody(req, key); e != nil {
				return e
			}
		}
		raws = []string{string(raw)}
	} else {
		if e := c.readBody(r, req, buf); e != nil {
			return e
		}
		var e *reqError
		raws, defaults, e = c.parseBody(req)
		if e != nil {
			return e
		}
	}
	if len(raws) == 0 {
		return refuse(CodeEmptyBatch, "the batch holds no events")
	}
	limits := req.tenant.Limits
	if limits.MaxBatchEvents > 0 && len(raws) > limits.MaxBatchEvents {
		return refuse(CodeTooManyEvents, "batch has "+strconv.Itoa(len(raws))+" events, limit "+strconv.Itoa(limits.MaxBatchEvents))
	}
	return c.store(r.Context(), req, raws, defaults)
}

// readBody reads the (possibly gzipped) body within the size limit.
func (c *Collector) readBody(r *http.Request, req *request, buf *bytes.Buffer) *reqError {
	limit := c.cfg.MaxBodyBytes
	if req.tenant != nil && req.tenant.Limits.MaxBatchBytes > 0 {
		limit = int64(req.tenant.Limits.MaxBatchBytes)
	}
	var body io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		// The compressed size is bounded by the server-wide limit, the
		// decompressed size by the tenant's: a gzip bomb stops at the limit.
		if r.ContentLength > c.cfg.MaxBodyBytes {
			return refuse(CodeBatchTooLarge, "compressed body exceeds "+strconv.FormatInt(c.cfg.MaxBodyBytes, 10)+" bytes")
		}
		zr, err := gzip.NewReader(http.MaxBytesReader(nil, r.Body, c.cfg.MaxBodyBytes))
		if err != nil {
			return refuse(CodeInvalidGzip, "body is not valid gzip: "+err.Error())
		}
		defer zr.Close()
		body = zr
	default:
		return refuse(CodeUnsupportedEncoding, "Content-Encoding "+enc+" is not supported; use gzip or none")
	}
	if r.ContentLength > limit {
		return refuse(CodeBatchTooLarge, "body is "+strconv.FormatInt(r.ContentLength, 10)+" bytes, limit "+strconv.FormatInt(limit, 10))
	}
	n, err := buf.ReadFrom(io.LimitReader(body, limit+1))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return refuse(CodeBatchTooLarge, "body exceeds the server limit")
		}
		var corrupt flate.CorruptInputError
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &corrupt) {
			return refuse(CodeInvalidGzip, "reading body: "+err.Error())
		}
		return refuse(CodeInvalidJSON, "reading body: "+err.Error())
	}
	if n > limit {
		return refuse(CodeBatchTooLarge, "body exceeds "+strconv.FormatInt(limit, 10)+" bytes")
	}
	req.body = buf.Bytes()
	return nil
}

// parseBody validates the body, splits it into raw events and learns the
// write key from the body when the request had no Basic auth.
func (c *Collector) parseBody(req *request) ([]string, *batchDefaults, *reqError) {
	body := strings.TrimSpace(unsafe.String(unsafe.SliceData(req.body), len(req.body)))
	if len(body) == 0 {
		return nil, nil, refuse(CodeInvalidJSON, "empty body")
	}
	if body[0] != '{' {
		return nil, nil, refuse(CodeInvalidJSON, "body must be a JSON object")
	}
	if !gjson.Valid(body) {
		return nil, nil, refuse(CodeInvalidJSON, "body is not valid JSON")
	}
	isBatch := req.ep.kind == kindBatch
	if req.ep.kind == kindBeacon {
		isBatch = gjson.Get(body, "batch").Exists()
	}
	if !isBatch {
		if req.tenant == nil {
			if e := c.authBody(req, gjson.Get(body, "writeKey").String()); e != nil {
				return nil, nil, e
			}
		}
		if req.ep.kind == kindBeacon {
			req.ep.typ = event.TypeUnknown
		}
		if max := req.tenant.Limits.MaxEventBytes; req.ep.kind == kindSingle && max > 0 && len(body) > max {
			return nil, nil, refuse(CodeEventTooLarge, "event is "+strconv.Itoa(len(body))+" bytes, limit "+strconv.Itoa(max))
		}
		return []string{body}, nil, nil
	}
	var (
		raws     []string
		d        batchDefaults
		writeKey string
		bad      *reqError
	)
	gjson.Parse(body).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "batch":
			if !v.IsArray() {
				bad = refuse(CodeInvalidBatch, "batch must be an array of events")
				return false
			}
			v.ForEach(func(_, item gjson.Result) bool {
				raws = append(raws, item.Raw)
				return true
			})
		case "context":
			d.context, bad = batchObject("context", v)
		case "integrations":
			d.integrations, bad = batchObject("integrations", v)
		case "writeKey":
			writeKey = v.String()
		case "sentAt":
			if v.Type != gjson.String && v.Type != gjson.Null {
				bad = refuse(CodeInvalidBatch, "sentAt must be a string")
			}
			d.sentAt = v.Str
		}
		return bad == nil
	})
	if bad != nil {
		return nil, nil, bad
	}
	if req.tenant == nil {
		if e := c.authBody(req, writeKey); e != nil {
			return nil, nil, e
		}
	}
	return raws, &d, nil
}

func batchObject(name string, v gjson.Result) (string, *reqError) {
	switch {
	case v.IsObject():
		return v.Raw, nil
	case v.Type == gjson.Null:
		return "", nil
	}
	return "", refuse(CodeInvalidBatch, "batch "+name+" must be an object")
}

// authBasic authenticates by the write key sent as the HTTP Basic auth user,
// when there is one; without it, the body or the query may bring the key.
func (c *Collector) authBasic(r *http.Request, req *request) *reqError {
	key, _, ok := r.BasicAuth()
	if !ok || key == "" {
		return nil
	}
	t, found := c.deps.Tenants.ByWriteKey(key)
	if !found {
		return refuse(CodeInvalidWriteKey, "unknown write key")
	}
	return c.authenticated(req, t)
}

// authBody authenticates by a write key found in the body or query, and
// applies the tenant's body limit that could not be applied before.
func (c *Collector) authBody(req *request, key string) *reqError {
	if key == "" {
		return refuse(CodeMissingWriteKey, "send the write key as the Basic auth user or as writeKey")
	}
	t, ok := c.deps.Tenants.ByWriteKey(key)
	if !ok {
		return refuse(CodeInvalidWriteKey, "unknown write key")
	}
	if e := c.authenticated(req, t); e != nil {
		return e
	}
	if max := t.Limits.MaxBatchBytes; max > 0 && len(req.body) > max {
		return refuse(CodeBatchTooLarge, "body is "+strconv.Itoa(len(req.body))+" bytes, limit "+strconv.Itoa(max))
	}
	return nil
}

// part is the frames of one request for one partition.
type part struct {
	partition int
	p         *pending
}

// framePool holds requests' frame buffers. A buffer goes back only when
// every partition acknowledged: after a timeout, a publisher may still read it.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// store validates every event, admits the valid ones, hands them to group
// commit and waits for the log's acknowledgement.
func (c *Collector) store(ctx context.Context, req *request, raws []string, defaults *batchDefaults) *reqError {
	t := req.tenant
	in := eventInput{
		tenant: t.ID, t: t, typ: req.ep.typ, receivedAt: req.receivedAt, peerIP: req.peerIP,
		maxFutureSkew: c.cfg.MaxFutureSkew, maxEventBytes: t.Limits.MaxEventBytes, batch: defaults,
	}
	if req.ep.kind == kindBatch || req.ep.kind == kindBeacon && defaults != nil {
		in.typ = event.TypeUnknown
	}
	ipPolicy := enrich.IPPolicy(t.Settings.IPPolicy)
	req.results = make([]result, len(raws))
	parts := make([]part, 0, 4)
	fp := framePool.Get().(*[]byte)
	frames := (*fp)[:0]
	var ids idGen
	var e event.Event
	for i, raw := range raws {
		code, msg := decodeEvent(raw, &in, &e)
		if code != "" {
			req.results[i] = result{messageID: strings.Clone(e.MessageID), code: code, msg: msg}
			c.metrics.rejectedEvents.WithLabelValues(t.ID, string(code)).Inc()
			continue
		}
		if e.MessageID == "" {
			e.MessageID = ids.next()
		}
		if e.IP != "" {
			c.applyIPPolicy(&e, ipPolicy)
		}
		req.results[i] = result{messageID: strings.Clone(e.MessageID)}
		p := event.Partition(t.ID, e.VisitorKey(), c.deps.Partitions)
		j := 0
		for j < len(parts) && parts[j].partition != p {
			j++
		}
		if j == len(parts) {
			parts = append(parts, part{partition: p, p: &pending{}})
		}
		off := len(frames)
		frames = event.AppendFrame(frames, &e)
		pp := parts[j].p
		pp.spans = append(pp.spans, span{off, len(frames)})
		pp.size += len(frames) - off
		pp.n++
		req.accepted++
	}
	*fp = frames
	if req.accepted == 0 {
		framePool.Put(fp)
		return nil
	}
	admitted, qe := c.admission.admit(t, req.accepted, req.receivedAt)
	if qe != nil {
		framePool.Put(fp)
		return qe
	}
	if admitted < req.accepted {
		parts = c.dropOverQuota(req, parts, req.accepted-admitted)
		if req.accepted == 0 {
			framePool.Put(fp)
			return nil
		}
	}
	a := newAck(len(parts))
	ctx, cancel := context.WithTimeout(ctx, c.cfg.AckTimeout)
	defer cancel()
	for i, pt := range parts {
		pt.p.ack = a
		pt.p.buf = frames
		if err := c.commit.enqueue(ctx, pt.partition, pt.p); err != nil {
			for range parts[i:] { // never enqueued: answer for them here
				a.finish(err)
			}
			break
		}
	}
	select {
	case <-a.done:
		if cap(frames) <= 4<<20 {
			framePool.Put(fp)
		}
	case <-ctx.Done():
		return c.unavailable(t, ctx.Err())
	}
	if err := a.result(); err != nil {
		return c.unavailable(t, err)
	}
	c.metrics.accepted.WithLabelValues(t.ID).Add(float64(req.accepted))
	return nil
}

// applyIPPolicy resolves the event's country, then applies the tenant's IP
// policy to its address and to context.ip, before anything is stored.
func (c *Collector) applyIPPolicy(e *event.Event, policy enrich.IPPolicy) {
	if c.deps.Geo != nil {
		e.Enrichment.Country = c.deps.Geo.Country(e.IP)
	}
	if policy == "" || policy == enrich.IPKeep {
		return
	}
	e.IP = policy.Apply(e.IP)
	if len(e.Context) > 0 && bytes.Contains(e.Context, []byte(`"ip"`)) {
		var err error
		if e.IP == "" {
			e.Context, err = sjson.DeleteBytes(e.Context, "ip")
		} else {
			e.Context, err = sjson.SetBytes(e.Context, "ip", e.IP)
		}
		if err != nil { // the context was validated as an object; keep none rather than leak
			e.Context = nil
		}
	}
}

func (c *Collector) unavailable(t *tenant.Tenant, err error) *reqError {
	code := CodeUnavailable
	if errors.Is(err, errClosed) {
		code = CodeShuttingDown
	}
	e := refuse(code, "the event log did not acknowledge in time; retry")
	e.retryAfter = 1
	return e
}

// idGen makes message ids for events that came without one: a random
// prefix per request and a counter.
type idGen struct {
	prefix string
	n      int
}

func (g *idGen) next() string {
	if g.prefix == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		g.prefix = "ctr-" + hex.EncodeToString(b[:]) + "-"
	}
	g.n++
	return g.prefix + strconv.Itoa(g.n)
}

// clientIP returns the peer address, or the client address from
// X-Forwarded-For when the peer is a trusted proxy: the right-most address
// that is not itself a trusted proxy.
func (c *Collector) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !c.trusted(peer.Unmap()) {
		return host
	}
	xff := r.Header.Values("X-Forwarded-For")
	hops := strings.Split(strings.Join(xff, ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !c.trusted(a.Unmap()) {
			return a.Unmap().String()
		}
	}
	return host
}

func (c *Collector) trusted(a netip.Addr) bool {
	for _, p := range c.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// appendResults writes the answer to a readable request.
func appendResults(dst []byte, req *request) []byte {
	dst = append(dst, `{"success":true,"accepted":`...)
	dst = strconv.AppendInt(dst, int64(req.accepted), 10)
	dst = append(dst, `,"rejected":`...)
	dst = strconv.AppendInt(dst, int64(len(req.results)-req.accepted), 10)
	dst = append(dst, `,"results":[`...)
	for i, r := range req.results {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"messageId":`...)
		dst = strconv.AppendQuote(dst, r.messageID)
		if r.code == "" {
			dst = append(dst, `,"status":"accepted"}`...)
			continue
		}
		dst = append(dst, `,"status":"rejected","code":"`...)
		dst = append(dst, r.code...)
		dst = append(dst, `","message":`...)
		dst = strconv.AppendQuote(dst, r.msg)
		dst = append(dst, '}')
	}
	return append(dst, "]}\n"...)
}

func writeError(w http.ResponseWriter, e *reqError) int {
	st := status[e.code]
	if st == 0 {
		st = http.StatusBadRequest
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(st)
	b, _ := json.Marshal(map[string]any{"success": false, "error": map[string]string{"code": string(e.code), "message": e.msg}})
	_, _ = w.Write(append(b, '\n'))
	return st
}

// transparentGIF is a 1×1 transparent GIF.
var transparentGIF = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// pixelEvent builds an event from a pixel request. It takes Segment's
// ?data=<base64 JSON>, or the fields as parameters: writeKey, userId,
// anonymousId, messageId, event, name, timestamp, and properties.X,
// context.X, traits.X for nested string values.
func pixelEvent(q map[string][]string) (json.RawMessage, string, *reqError) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if data := get("data"); data != "" {
		var raw []byte
		var err error
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if raw, err = enc.DecodeString(data); err == nil {
				break
			}
		}
		if err != nil || !json.Valid(raw) {
			return nil, "", refuse(CodeInvalidJSON, "data must be base64-encoded JSON")
		}
		var k struct {
			WriteKey string `json:"writeKey"`
		}
		_ = json.Unmarshal(raw, &k)
		if k.WriteKey == "" {
			k.WriteKey = get("writeKey")
		}
		return raw, k.WriteKey, nil
	}
	ev := map[string]any{}
	nested := map[string]map[string]string{}
	for k, v := range q {
		if len(v) == 0 {
			continue
		}
		switch k {
		case "userId", "anonymousId", "messageId", "event", "name", "timestamp":
			ev[k] = v[0]
		default:
			if obj, field, ok := strings.Cut(k, "."); ok && (obj == "properties" || obj == "context" || obj == "traits") && field != "" {
				if nested[obj] == nil {
					nested[obj] = map[string]string{}
				}
				nested[obj][field] = v[0]
			}
		}
	}
	for k, v := range nested {
		ev[k] = v
	}
	raw, _ := json.Marshal(ev)
	return raw, get("writeKey"), nil
}
