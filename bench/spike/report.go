package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Counts are requests by outcome.
type Counts struct {
	Sent      int `json:"sent"`
	Served    int `json:"served"`
	Cached    int `json:"cached"`
	Degraded  int `json:"degraded"`
	Captured  int `json:"captured"`
	Shed      int `json:"shed"`
	OriginErr int `json:"origin_err"`
	ProxyErr  int `json:"proxy_err"`
	ConnErr   int `json:"conn_err"`
	NoAnswer  int `json:"no_answer"`
	Overflow  int `json:"overflow"`
}

func (c *Counts) add(o outcome) {
	if o != outOverflow && o != outNone {
		c.Sent++
	}
	switch o {
	case outServed:
		c.Served++
	case outCached:
		c.Cached++
	case outDegraded:
		c.Degraded++
	case outCaptured:
		c.Captured++
	case outShed:
		c.Shed++
	case outOriginErr:
		c.OriginErr++
	case outProxyErr:
		c.ProxyErr++
	case outConnErr:
		c.ConnErr++
	case outNoAnswer:
		c.NoAnswer++
	case outOverflow:
		c.Overflow++
	}
}

// OK is the requests that got a full answer: from the origin or a fresh cache entry.
func (c Counts) OK() int { return c.Served + c.Cached }

// Answered is OK plus the degraded answers and captured orders.
func (c Counts) Answered() int { return c.OK() + c.Degraded + c.Captured }

// Errors is every non-2xx answer that is not a shed and every connection failure.
func (c Counts) Errors() int { return c.OriginErr + c.ProxyErr + c.ConnErr }

// Plateau is what happened while the offered rate was at its peak, by the time each
// answer arrived.
type Plateau struct {
	FromS       float64 `json:"from_s"`
	ToS         float64 `json:"to_s"`
	OfferedRPS  float64 `json:"offered_rps"`
	ServedRPS   float64 `json:"served_rps"`
	CachedRPS   float64 `json:"cached_rps"`
	DegradedRPS float64 `json:"degraded_rps"`
	CapturedRPS float64 `json:"captured_rps"`
	ShedRPS     float64 `json:"shed_rps"`
	ErrorRPS    float64 `json:"error_rps"`
	NoAnswerRPS float64 `json:"no_answer_rps"`
	// GoodputPct is the origin's service time spent on requests whose 2xx reached
	// the client, over slots x plateau length: the share of capacity doing good work.
	GoodputPct float64 `json:"goodput_pct"`
	// ServedPctOfNominal is ServedRPS over the nominal capacity of the offered mix;
	// equal to GoodputPct when the proxy does not change the mix.
	ServedPctOfNominal float64 `json:"served_pct_of_nominal"`
}

// ClassReport is one class's figures over the whole run.
type ClassReport struct {
	Class       string  `json:"class"`
	Counts      Counts  `json:"counts"`
	OKPct       float64 `json:"ok_pct"`       // served or cached
	AnsweredPct float64 `json:"answered_pct"` // plus degraded and captured
	P50ms       float64 `json:"served_p50_ms"`
	P99ms       float64 `json:"served_p99_ms"`
	P99Allms    float64 `json:"answered_p99_ms"` // every request with an answer of any kind
}

// Orders follows every order (an order and its client's retry with the same key
// count once; its outcome is the best of its attempts).
type Orders struct {
	Submitted    int     `json:"submitted"`
	Retries      int     `json:"retries"`      // second POSTs with the same order id and key
	Answered2xx  int     `json:"answered_2xx"` // 2xx other than a capture
	Captured     int     `json:"captured_202"`
	Failed       int     `json:"failed"` // non-2xx or connection error
	NoAnswer     int     `json:"no_answer"`
	ConfirmedPct float64 `json:"confirmed_pct"` // (2xx + 202) / submitted
	// ReachedOrigin is the submitted orders the origin processed, after the replay
	// wait; Replayed, those it first processed from a replay (Floodgate-Capture-Id).
	ReachedOrigin int `json:"reached_origin"`
	Replayed      int `json:"replayed"`
	// CapturedLastAtS is when the last captured order reached the origin, in seconds
	// since the start of the load (-1: none did); CapturedAfterExitS, that less the
	// proxy's last exit from degraded mode (-1: unknown). ReplayBudgetS is the
	// issue's bound on the latter: captured / replay rate + 30 s (0: rate unknown).
	CapturedLastAtS    float64 `json:"captured_last_at_s"`
	CapturedAfterExitS float64 `json:"captured_after_exit_s"`
	ReplayBudgetS      float64 `json:"replay_budget_s,omitempty"`
	CapturedMissing    int     `json:"captured_missing"` // captured, never processed
	// Lost is the orders confirmed to the client (2xx or 202) that had not reached
	// the origin when the replay wait ended. While StillArrivingPerS > 0 they may be
	// late rather than lost: replay was still delivering orders at that rate.
	Lost              int     `json:"lost"`
	StillArrivingPerS float64 `json:"still_arriving_per_s"`
	// Unconfirmed is the orders the origin recorded though the client was told of a
	// failure or got no answer: a sale the buyer does not know about.
	Unconfirmed int `json:"unconfirmed"`
	// DupOrders is order ids recorded more than once at the origin; DupKeys is
	// POSTs that repeated a recorded Idempotency-Key (answered, not recorded).
	DupOrders   int64   `json:"duplicated_at_origin"`
	DupKeys     int64   `json:"repeated_keys_at_origin"`
	Foreign     int     `json:"foreign"` // order ids at the origin not from this run
	ReplayWaitS float64 `json:"replay_wait_s"`
}

// Transitions is the increase of floodgate_degrade_transitions_total over the run.
type Transitions struct {
	Total float64            `json:"total"`
	ByTo  map[string]float64 `json:"by_to"`
}

// GenStats is the generator's own health: a late or saturated generator makes the
// run suspect.
type GenStats struct {
	LagP99ms float64            `json:"send_lag_p99_ms"`
	LagMaxms float64            `json:"send_lag_max_ms"`
	Overflow int                `json:"overflow"`
	TimeoutS float64            `json:"client_timeout_s"`
	Timeouts map[string]float64 `json:"client_timeouts_s,omitempty"`
}

// Second is one second of the timeline: sends by schedule, answers by arrival.
type Second struct {
	T        int `json:"t"`
	Offered  int `json:"offered"`
	Served   int `json:"served"`
	Cached   int `json:"cached"`
	Degraded int `json:"degraded"`
	Captured int `json:"captured"`
	Shed     int `json:"shed"`
	Errors   int `json:"errors"`
	NoAnswer int `json:"no_answer"`
	// Mode is the proxy's mode in that second from floodgate_degraded: "degraded"
	// when any reading in it was, "normal" when all were; empty when not measured.
	Mode string `json:"mode,omitempty"`
}

// Peak is what became of the requests sent while the offered rate was at its peak,
// as the client saw it: goodput is a 2xx (served, cached, degraded or captured)
// within the SLO, as a share of the requests sent.
type Peak struct {
	SLOms      float64 `json:"slo_ms"`
	Sent       int     `json:"sent"`
	GoodputPct float64 `json:"goodput_pct"`
	// ClassGoodputPct is the same per class, in class order; for orders a 202
	// capture counts, as it is a 2xx.
	ClassGoodputPct []float64 `json:"class_goodput_pct"`
	ClassSent       []int     `json:"class_sent"`
	// AdmittedP99ms is the p99 latency of the requests the proxy forwarded to the
	// origin (answered by it, 2xx or not); AnsweredP99ms of every answer.
	AdmittedP99ms  float64 `json:"admitted_p99_ms"`
	AnsweredP99ms  float64 `json:"answered_p99_ms"`
	ClientTimeouts int     `json:"client_timeouts"` // no answer within the client timeout
	Refused        int     `json:"refused"`         // shed, errors and no answer
}

// Recovery is the steady traffic after the spike.
type Recovery struct {
	FromS      float64 `json:"from_s"`
	ToS        float64 `json:"to_s"`
	Sent       int     `json:"sent"`
	GoodputPct float64 `json:"goodput_pct"`
	// RefusedAfterExit is the requests sent after the proxy's last exit from
	// degraded mode (or, without a known exit, during the whole recovery) that got
	// no 2xx: shed, errors, no answer; SentAfterExit, how many were sent then.
	RefusedAfterExit int `json:"refused_after_exit"`
	SentAfterExit    int `json:"sent_after_exit"`
}

// Report is one proxy's run. A proxy that could not run has only Name, Date and
// NotRunnable.
type Report struct {
	Name        string             `json:"name"`
	NotRunnable string             `json:"not_runnable,omitempty"`
	Date        string             `json:"date"`
	Target      string             `json:"target,omitempty"`
	Profile     *ProfileJSON       `json:"profile,omitempty"`
	Model       *Model             `json:"model,omitempty"`
	Mix         map[string]float64 `json:"mix,omitempty"`
	CapacityRPS float64            `json:"capacity_rps,omitempty"`
	Totals      Counts             `json:"totals"`
	Peak        *Peak              `json:"peak,omitempty"`
	Recovery    *Recovery          `json:"recovery,omitempty"`
	Modes       *Modes             `json:"modes,omitempty"`
	ExitBudgetS float64            `json:"exit_budget_s,omitempty"` // issue 15: hold + 3 windows
	ModesNote   string             `json:"modes_note,omitempty"`
	Plateau     Plateau            `json:"plateau"`
	Classes     []ClassReport      `json:"classes,omitempty"`
	Orders      Orders             `json:"orders"`
	Transitions *Transitions       `json:"transitions,omitempty"`
	TransNote   string             `json:"transitions_note,omitempty"`
	Generator   GenStats           `json:"generator"`
	Machine     *Machine           `json:"machine,omitempty"`
	Origin      *OriginStats       `json:"origin,omitempty"`
	Timeline    []Second           `json:"timeline,omitempty"`
}

// ProfileJSON is the profile in seconds.
type ProfileJSON struct {
	BaseRPS float64 `json:"base_rps"`
	PeakRPS float64 `json:"peak_rps"`
	LeadS   float64 `json:"lead_s"`
	RiseS   float64 `json:"rise_s"`
	HoldS   float64 `json:"hold_s"`
	FallS   float64 `json:"fall_s"`
	TailS   float64 `json:"tail_s"` // the recovery: steady traffic after the fall
}

// runData is everything analyze needs.
type runData struct {
	name, target string
	prof         Profile
	mix          Mix
	model        Model
	timeouts     [numClasses]time.Duration
	sched        []Arrival
	recs         []record
	runID        string
	orders       map[string]OrderAt // orders processed at the origin, by id
	origin       *OriginStats
	replayWait   time.Duration
	replayRate   float64 // orders/s still arriving when the wait ended
	trans        *Transitions
	transNote    string
	start        time.Time     // wall-clock start of the load
	slo          time.Duration // goodput deadline
	modeSamples  []modeSample  // floodgate_degraded over time
	modesNote    string        // why there are no samples
	// proxyReplayRate is the proxy's configured replay rate, orders/s (0: unknown).
	proxyReplayRate float64
	exitBudget      time.Duration // hold + 3 windows (0: unknown)
}

// analyze computes the report of one run. It does no I/O.
func analyze(in runData) Report {
	m := in.model
	from, to := in.prof.Plateau()
	rep := Report{
		Name: in.name, Target: in.target, Date: time.Now().UTC().Format(time.RFC3339),
		Profile: &ProfileJSON{BaseRPS: in.prof.Base, PeakRPS: in.prof.Peak, LeadS: in.prof.Lead.Seconds(),
			RiseS: in.prof.Rise.Seconds(), HoldS: in.prof.Hold.Seconds(), FallS: in.prof.Fall.Seconds(), TailS: in.prof.Tail.Seconds()},
		Model: &m, Mix: map[string]float64{}, CapacityRPS: m.CapacityRPS(in.mix),
		Transitions: in.trans, TransNote: in.transNote, Origin: in.origin,
	}
	jm := m.withJSON()
	rep.Model = &jm
	for c := range numClasses {
		rep.Mix[classNames[c]] = in.mix.Share(c)
	}

	var cls [numClasses]Counts
	var servedLat, allLat [numClasses][]time.Duration
	var lags []time.Duration
	var p Plateau
	work := 0.0
	n := int(math.Ceil(in.prof.Duration().Seconds() + maxTimeout(in.timeouts).Seconds()))
	tl := make([]Second, n+1)
	for i := range tl {
		tl[i].T = i
	}
	sec := func(d time.Duration) *Second { return &tl[min(max(int(d/time.Second), 0), n)] }
	for i, a := range in.sched {
		r := in.recs[i]
		c := a.Class
		cls[c].add(r.out)
		rep.Totals.add(r.out)
		sec(a.At).Offered++
		if a.At >= from && a.At < to {
			p.OfferedRPS++
		}
		if r.out == outOverflow || r.out == outNone {
			continue
		}
		lags = append(lags, time.Duration(r.lagUS)*time.Microsecond)
		if r.out != outNoAnswer {
			allLat[c] = append(allLat[c], r.lat)
		}
		if r.out == outServed {
			servedLat[c] = append(servedLat[c], r.lat)
		}
		done := a.At + r.lat
		s := sec(done)
		inPlateau := done >= from && done < to
		switch r.out {
		case outServed:
			s.Served++
			if inPlateau {
				p.ServedRPS++
				if c != clsBackoffice { // on its own server, outside the shop's slots
					work += m.Service[c].Seconds()
				}
			}
		case outCached:
			s.Cached++
			if inPlateau {
				p.CachedRPS++
			}
		case outDegraded:
			s.Degraded++
			if inPlateau {
				p.DegradedRPS++
			}
		case outCaptured:
			s.Captured++
			if inPlateau {
				p.CapturedRPS++
			}
		case outShed:
			s.Shed++
			if inPlateau {
				p.ShedRPS++
			}
		case outNoAnswer:
			s.NoAnswer++
			if inPlateau {
				p.NoAnswerRPS++
			}
		default:
			s.Errors++
			if inPlateau {
				p.ErrorRPS++
			}
		}
	}
	if w := (to - from).Seconds(); w > 0 {
		for _, f := range []*float64{&p.OfferedRPS, &p.ServedRPS, &p.CachedRPS, &p.DegradedRPS, &p.CapturedRPS, &p.ShedRPS, &p.ErrorRPS, &p.NoAnswerRPS} {
			*f /= w
		}
		p.GoodputPct = 100 * work / (w * float64(m.Slots))
		if rep.CapacityRPS > 0 {
			p.ServedPctOfNominal = 100 * p.ServedRPS / rep.CapacityRPS
		}
	}
	p.FromS, p.ToS = from.Seconds(), to.Seconds()
	rep.Plateau = p
	// Trim the timeline's empty tail, then mark each second's mode.
	for len(tl) > 0 && tl[len(tl)-1] == (Second{T: tl[len(tl)-1].T}) {
		tl = tl[:len(tl)-1]
	}
	for _, ms := range in.modeSamples {
		if i := int(ms.at / time.Second); i >= 0 && i < len(tl) {
			switch {
			case ms.degraded:
				tl[i].Mode = "degraded"
			case tl[i].Mode == "":
				tl[i].Mode = "normal"
			}
		}
	}
	rep.Timeline = tl

	for c := range numClasses {
		cr := ClassReport{Class: classNames[c], Counts: cls[c],
			OKPct: pct(cls[c].OK(), cls[c].Sent), AnsweredPct: pct(cls[c].Answered(), cls[c].Sent),
			P50ms: ms(percentile(servedLat[c], 0.50)), P99ms: ms(percentile(servedLat[c], 0.99)),
			P99Allms: ms(percentile(allLat[c], 0.99))}
		rep.Classes = append(rep.Classes, cr)
	}

	rep.ExitBudgetS = in.exitBudget.Seconds()
	if in.modeSamples != nil {
		rep.Modes = analyzeModes(in.modeSamples, in.prof)
	} else {
		rep.ModesNote = in.modesNote
	}
	rep.Peak, rep.Recovery = peakAndRecovery(in, rep.Modes)
	rep.Orders = ordersReport(in, rep.Modes)
	rep.Generator = GenStats{LagP99ms: ms(percentile(lags, 0.99)), LagMaxms: ms(percentile(lags, 1)),
		Overflow: rep.Totals.Overflow, TimeoutS: in.timeouts[clsStatic].Seconds()}
	for c, t := range in.timeouts {
		if t != in.timeouts[clsStatic] {
			if rep.Generator.Timeouts == nil {
				rep.Generator.Timeouts = map[string]float64{}
			}
			rep.Generator.Timeouts[classNames[c]] = t.Seconds()
		}
	}
	return rep
}

// good reports whether a request's answer is goodput: a 2xx within slo.
func good(r record, slo time.Duration) bool {
	switch r.out {
	case outServed, outCached, outDegraded, outCaptured:
		return r.lat <= slo
	}
	return false
}

// peakAndRecovery computes the client's view of the plateau and of the recovery,
// by send time.
func peakAndRecovery(in runData, modes *Modes) (*Peak, *Recovery) {
	from, to := in.prof.Plateau()
	rfrom, rto := in.prof.Recovery()
	slo := in.slo
	if slo <= 0 {
		slo = time.Second
	}
	pk := &Peak{SLOms: ms(slo), ClassGoodputPct: make([]float64, numClasses), ClassSent: make([]int, numClasses)}
	var classGood [numClasses]int
	var admitted, answered []time.Duration
	good1 := 0
	rc := &Recovery{FromS: rfrom.Seconds(), ToS: rto.Seconds()}
	rgood := 0
	exit := rfrom
	if modes != nil && modes.LastExitS >= 0 && !modes.DegradedAtEnd {
		exit = time.Duration(modes.LastExitS * float64(time.Second))
	}
	for i, a := range in.sched {
		r := in.recs[i]
		if r.out == outNone || r.out == outOverflow {
			continue
		}
		g := good(r, slo)
		if a.At >= from && a.At < to {
			pk.Sent++
			pk.ClassSent[a.Class]++
			if g {
				good1++
				classGood[a.Class]++
			}
			switch r.out {
			case outServed, outOriginErr:
				admitted = append(admitted, r.lat)
			}
			if r.out != outNoAnswer && r.out != outConnErr {
				answered = append(answered, r.lat)
			}
			if r.out == outNoAnswer {
				pk.ClientTimeouts++
			}
			if !g {
				pk.Refused++
			}
		}
		if a.At >= rfrom && a.At < rto {
			rc.Sent++
			if g {
				rgood++
			}
		}
		if a.At >= exit && a.At >= rfrom && a.At < rto {
			rc.SentAfterExit++
			switch r.out {
			case outServed, outCached, outDegraded, outCaptured:
			default:
				rc.RefusedAfterExit++
			}
		}
	}
	pk.GoodputPct = pct(good1, pk.Sent)
	for c := range numClasses {
		pk.ClassGoodputPct[c] = pct(classGood[c], pk.ClassSent[c])
	}
	pk.AdmittedP99ms = ms(percentile(admitted, 0.99))
	pk.AnsweredP99ms = ms(percentile(answered, 0.99))
	rc.GoodputPct = pct(rgood, rc.Sent)
	if pk.Sent == 0 {
		pk = nil
	}
	if rc.Sent == 0 {
		rc = nil
	}
	return pk, rc
}

// orderState is what became of one order over its attempts.
type orderState struct {
	first, best outcome
	attempts    int
}

// rank orders outcomes for an order: a 2xx from the origin beats a capture, which
// beats everything else.
func rank(o outcome) int {
	switch o {
	case outServed, outCached, outDegraded:
		return 3
	case outCaptured:
		return 2
	case outNone, outOverflow:
		return 0
	}
	return 1
}

func ordersReport(in runData, modes *Modes) Orders {
	o := Orders{CapturedLastAtS: -1, CapturedAfterExitS: -1}
	byOrder := map[uint32]*orderState{}
	var nums []uint32
	for i, a := range in.sched {
		if a.Class != clsCheckout {
			continue
		}
		r := in.recs[i]
		if r.out == outOverflow || r.out == outNone {
			continue
		}
		st := byOrder[a.Item]
		if st == nil {
			st = &orderState{first: r.out, best: r.out}
			byOrder[a.Item] = st
			nums = append(nums, a.Item)
		}
		if a.Retry {
			o.Retries++
		}
		st.attempts++
		if rank(r.out) > rank(st.best) {
			st.best = r.out
		}
	}
	ours := 0
	startMS := in.start.UnixMilli()
	var lastCaptured int64 = -1
	for _, n := range nums {
		st := byOrder[n]
		o.Submitted++
		id := orderIDOf(in.runID, int(n))
		rec, at := in.orders[id]
		if at {
			o.ReachedOrigin++
			ours++
			if rec.Replayed {
				o.Replayed++
			}
		}
		confirmed := false
		switch st.best {
		case outServed, outCached, outDegraded:
			o.Answered2xx++
			confirmed = true
		case outCaptured:
			o.Captured++
			confirmed = true
			if at {
				lastCaptured = max(lastCaptured, rec.AtMS-startMS)
			} else {
				o.CapturedMissing++
			}
		case outNoAnswer:
			o.NoAnswer++
		default:
			o.Failed++
		}
		if confirmed && !at {
			o.Lost++
		}
		if !confirmed && at {
			o.Unconfirmed++
		}
	}
	o.Foreign = len(in.orders) - ours
	o.ConfirmedPct = pct(o.Answered2xx+o.Captured, o.Submitted)
	if in.origin != nil {
		o.DupOrders, o.DupKeys = in.origin.DupOrders, in.origin.DupKeys
	}
	o.ReplayWaitS = math.Round(in.replayWait.Seconds()*10) / 10
	if o.Lost > 0 {
		o.StillArrivingPerS = math.Round(in.replayRate*10) / 10
	}
	if lastCaptured >= 0 {
		o.CapturedLastAtS = round1(float64(lastCaptured) / 1000)
		if modes != nil && modes.LastExitS >= 0 {
			o.CapturedAfterExitS = math.Round((o.CapturedLastAtS-modes.LastExitS)*10) / 10
		}
	}
	if in.proxyReplayRate > 0 && o.Captured > 0 {
		o.ReplayBudgetS = math.Round((float64(o.Captured)/in.proxyReplayRate+30)*10) / 10
	}
	return o
}

func maxTimeout(ts [numClasses]time.Duration) time.Duration { return slices.Max(ts[:]) }

// percentile returns the nearest-rank q-quantile of ds (sorting ds in place); 0 for
// none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	k := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(k, 0), len(ds)-1)]
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*10) / 10 }

func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	default:
		return fmt.Sprintf("%.0fms", v)
	}
}

// header describes the scenario of a report in one line.
func header(r Report) string {
	if r.Profile == nil || r.Model == nil {
		return ""
	}
	p, m := r.Profile, r.Model
	var fleet []string
	for _, b := range m.Backends {
		fleet = append(fleet, fmt.Sprintf("%s %d", b.Name, b.Slots))
	}
	slo := 1000.0
	if r.Peak != nil {
		slo = r.Peak.SLOms
	}
	return fmt.Sprintf("profile %.0f -> %.0f req/s (%.0fs lead, %.0fs rise, %.0fs plateau, %.0fs fall, %.0fs recovery); origin slots: %s; shop nominal capacity %.0f req/s uncached, accept queue %d per slot, queue timeout %.0fs, backlog penalty %.0f%%; SLO %s, client timeout %.0fs",
		p.BaseRPS, p.PeakRPS, p.LeadS, p.RiseS, p.HoldS, p.FallS, p.TailS, strings.Join(fleet, ", "), r.CapacityRPS, m.Backlog, m.QueueTimeS, 100*m.Penalty, fmtMS(slo), r.Generator.TimeoutS)
}

func transText(r Report) string {
	if r.Transitions == nil {
		if r.TransNote != "" {
			return r.TransNote
		}
		return "n/a"
	}
	keys := make([]string, 0, len(r.Transitions.ByTo))
	for k := range r.Transitions.ByTo {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("to %s %.0f", k, r.Transitions.ByTo[k])
	}
	return fmt.Sprintf("%.0f (%s)", r.Transitions.Total, strings.Join(parts, ", "))
}

// printRun prints one run's report.
func printRun(w io.Writer, r Report) {
	if r.NotRunnable != "" {
		fmt.Fprintf(w, "== %s: not runnable yet: %s\n", r.Name, r.NotRunnable)
		return
	}
	p := r.Plateau
	fmt.Fprintf(w, "== %s (%s): %d requests sent\n%s\n", r.Name, r.Target, r.Totals.Sent, header(r))
	fmt.Fprintf(w, "plateau %.0f-%.0fs, %.0f req/s offered: origin goodput %.1f%% of capacity (%.0f req/s served = %.1f%% of nominal);\n",
		p.FromS, p.ToS, p.OfferedRPS, p.GoodputPct, p.ServedRPS, p.ServedPctOfNominal)
	fmt.Fprintf(w, "  per second: cached %.0f, degraded %.0f, captured %.0f, shed %.0f, errors %.0f, no answer %.0f\n",
		p.CachedRPS, p.DegradedRPS, p.CapturedRPS, p.ShedRPS, p.ErrorRPS, p.NoAnswerRPS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tsent\tok%\tanswered%\tserved\tcached\tdegraded\tcaptured\tshed\torigin-err\tproxy-err\tconn-err\tno-answer\tp50 served\tp99 served\t")
	for _, c := range r.Classes {
		k := c.Counts
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", c.Class, k.Sent, c.OKPct, c.AnsweredPct,
			k.Served, k.Cached, k.Degraded, k.Captured, k.Shed, k.OriginErr, k.ProxyErr, k.ConnErr, k.NoAnswer, fmtMS(c.P50ms), fmtMS(c.P99ms))
	}
	k := r.Totals
	fmt.Fprintf(tw, "all\t%d\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\t\t\n", k.Sent, pct(k.OK(), k.Sent), pct(k.Answered(), k.Sent),
		k.Served, k.Cached, k.Degraded, k.Captured, k.Shed, k.OriginErr, k.ProxyErr, k.ConnErr, k.NoAnswer)
	tw.Flush()
	o := r.Orders
	fmt.Fprintf(w, "orders: %d submitted (+%d retries with the same key), %d answered 2xx + %d captured 202 = %.1f%% confirmed, %d failed, %d no answer; after %.0fs of replay wait: %d reached the origin, %d confirmed but not there%s, %d recorded without confirmation, %d duplicated at the origin (%d repeated keys deduplicated)\n",
		o.Submitted, o.Retries, o.Answered2xx, o.Captured, o.ConfirmedPct, o.Failed, o.NoAnswer, o.ReplayWaitS, o.ReachedOrigin, o.Lost, stillArriving(o), o.Unconfirmed, o.DupOrders, o.DupKeys)
	fmt.Fprintf(w, "degraded-mode transitions: %s\n", transText(r))
	if pk := r.Peak; pk != nil {
		fmt.Fprintf(w, "at the peak (sent %.0f-%.0fs): goodput %.1f%% of %d sent (2xx within %s);", p.FromS, p.ToS, pk.GoodputPct, pk.Sent, fmtMS(pk.SLOms))
		for c := range numClasses {
			fmt.Fprintf(w, " %s %.1f%%", classNames[c], pk.ClassGoodputPct[c])
		}
		fmt.Fprintf(w, "; p99 admitted %s, answered %s; client timeouts %d\n", fmtMS(pk.AdmittedP99ms), fmtMS(pk.AnsweredP99ms), pk.ClientTimeouts)
	}
	fmt.Fprintf(w, "degraded mode: %s\n", modesText(r))
	if rc := r.Recovery; rc != nil {
		fmt.Fprintf(w, "recovery (sent %.0f-%.0fs): goodput %.1f%% of %d; refused after the exit: %d of %d\n", rc.FromS, rc.ToS, rc.GoodputPct, rc.Sent, rc.RefusedAfterExit, rc.SentAfterExit)
	}
	fmt.Fprintf(w, "captured orders: %s\n", replayText(o))
	g := r.Generator
	fmt.Fprintf(w, "generator: send lag p99 %.1fms, max %.1fms, overflow %d", g.LagP99ms, g.LagMaxms, g.Overflow)
	if g.LagP99ms > 10 || g.Overflow > 0 {
		fmt.Fprint(w, "  (WARNING: the generator fell behind; the run is suspect)")
	}
	fmt.Fprintln(w)
	if r.Machine != nil {
		fmt.Fprintf(w, "machine during the load: %s", r.Machine)
		if disturbed(r) {
			fmt.Fprint(w, "  (WARNING: something else used the CPUs; the run may be disturbed)")
		}
		fmt.Fprintln(w)
	}
	if r.Origin != nil {
		fmt.Fprintf(w, "origin: accept queue max %d", r.Origin.MaxWaiting)
		for _, c := range classNames {
			s := r.Origin.Classes[c]
			fmt.Fprintf(w, "; %s served %d, queue full %d, queue timeout %d", c, s.Served, s.Overflow, s.QueueTimeout)
		}
		fmt.Fprintln(w)
		fmt.Fprint(w, "backends:")
		for _, b := range r.Origin.Backends {
			fmt.Fprintf(w, " %s (%d slots) served %d, refused %d, queue max %d, busy %.0fs;", b.Name, b.Slots, b.Served, b.Refused, b.MaxWaiting, b.ServiceS)
		}
		fmt.Fprintf(w, " replayed POSTs %d\n", r.Origin.Replays)
	}
}

func readReports(paths []string) ([]Report, error) {
	var out []Report
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// printComparison prints several runs side by side.
func printComparison(w io.Writer, rs []Report) {
	for _, r := range rs {
		if h := header(r); h != "" {
			fmt.Fprintf(w, "# %s\n", h)
			break
		}
	}
	var ran0 []Report
	for _, r := range rs {
		if r.NotRunnable == "" {
			ran0 = append(ran0, r)
		}
	}
	if len(ran0) > 0 {
		printIssue15(w, ran0)
		fmt.Fprintln(w, "plateau, by answer time: origin goodput (share of the shop's slot time doing useful work) and answers per second")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "proxy\tgoodput\tserved/s\tcached/s\tdegraded/s\tcaptured/s\tshed/s\terrors/s\tno-answer/s\tcheckout ok\tsearch ok\tbackoffice ok\tp99 served\ttransitions\t")
	var skipped []Report
	for _, r := range rs {
		if r.NotRunnable != "" {
			skipped = append(skipped, r)
			continue
		}
		p := r.Plateau
		p99 := 0.0
		for _, c := range r.Classes {
			p99 = max(p99, c.P99ms)
		}
		tr := "n/a"
		if r.Transitions != nil {
			tr = fmt.Sprintf("%.0f", r.Transitions.Total)
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f%%\t%.1f%%\t%.1f%%\t%s\t%s\t\n", r.Name, p.GoodputPct, p.ServedRPS,
			p.CachedRPS, p.DegradedRPS, p.CapturedRPS, p.ShedRPS, p.ErrorRPS, p.NoAnswerRPS,
			classOK(r, clsCheckout, true), classOK(r, clsSearch, false), classOK(r, clsBackoffice, false), fmtMS(p99), tr)
	}
	tw.Flush()
	for _, r := range skipped {
		fmt.Fprintf(w, "%s: not runnable yet: %s\n", r.Name, r.NotRunnable)
	}
	var ran []Report
	for _, r := range rs {
		if r.NotRunnable == "" {
			ran = append(ran, r)
		}
	}
	if len(ran) == 0 {
		return
	}
	fmt.Fprintln(w, "\nper class, whole run: ok% (answered%) and served latency p50/p99")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "class\t")
	for _, r := range ran {
		fmt.Fprintf(tw, "%s\t", r.Name)
	}
	fmt.Fprintln(tw)
	for c := range numClasses {
		fmt.Fprintf(tw, "%s\t", classNames[c])
		for _, r := range ran {
			cr := r.Classes[c]
			fmt.Fprintf(tw, "%.1f (%.1f) %s/%s\t", cr.OKPct, cr.AnsweredPct, fmtMS(cr.P50ms), fmtMS(cr.P99ms))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w, "\norders (checkout)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "proxy\tsubmitted\t2xx\tcaptured\tconfirmed\tfailed\tno answer\treached origin\tconfirmed, not there\tunconfirmed\tduplicated\treplay wait\t")
	for _, r := range ran {
		o := r.Orders
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f%%\t%d\t%d\t%d\t%d%s\t%d\t%d\t%.0fs\t\n", r.Name, o.Submitted, o.Answered2xx, o.Captured,
			o.ConfirmedPct, o.Failed, o.NoAnswer, o.ReachedOrigin, o.Lost, stillArriving(o), o.Unconfirmed, o.DupOrders, o.ReplayWaitS)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nCPU during the load, % of one CPU (proxy on its own CPU; generator and origin share the other)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "proxy\tproxy\tgenerator\torigin\tunattributed\tworst 5s\tsend lag p99\t")
	for _, r := range ran {
		if m := r.Machine; m != nil {
			fmt.Fprintf(tw, "%s\t%.0f%%\t%.0f%%\t%.0f%%\t%.0f%%\t%.0f%%\t%.1fms\t\n", r.Name, m.ProxyPct, m.GeneratorPct, m.OriginPct, m.OtherPct, m.PeakOtherPct, r.Generator.LagP99ms)
		}
	}
	tw.Flush()
	for _, r := range ran {
		g := r.Generator
		if g.LagP99ms > 10 || g.Overflow > 0 {
			fmt.Fprintf(w, "WARNING %s: generator send lag p99 %.0fms, overflow %d: the run is suspect\n", r.Name, g.LagP99ms, g.Overflow)
		}
		if disturbed(r) && r.Machine != nil {
			fmt.Fprintf(w, "WARNING %s: something else used the CPUs during the load (%.0f%% of a CPU on average, %.0f%% over the worst %ds): the run may be disturbed\n",
				r.Name, r.Machine.OtherPct, r.Machine.PeakOtherPct, peakWindow)
		}
	}
}

// modesText describes the polled degraded mode in one line.
func modesText(r Report) string {
	m := r.Modes
	if m == nil {
		if r.ModesNote != "" {
			return r.ModesNote
		}
		return "n/a"
	}
	if m.Entries == 0 {
		return fmt.Sprintf("never entered (%d samples)", m.Samples)
	}
	s := fmt.Sprintf("%d entries, %d exits; first entry at %.1fs, %.0fs degraded", m.Entries, m.Exits, m.FirstEntryS, m.DegradedS)
	if m.DegradedAtEnd {
		return s + "; still degraded at the end"
	}
	return s + fmt.Sprintf("; last exit at %.1fs: %.1fs after the end of the plateau, %.1fs after the steady traffic began", m.LastExitS, m.ExitAfterPeakS, m.ExitAfterSteadyS)
}

// replayText describes when the captured orders reached the origin.
func replayText(o Orders) string {
	if o.Captured == 0 {
		return "none"
	}
	s := fmt.Sprintf("%d captured, %d processed from a replay, %d never processed", o.Captured, o.Replayed, o.CapturedMissing)
	if o.CapturedLastAtS >= 0 {
		s += fmt.Sprintf("; the last at the origin at %.1fs", o.CapturedLastAtS)
		if o.CapturedAfterExitS != -1 {
			s += fmt.Sprintf(", %.1fs after the exit", o.CapturedAfterExitS)
		}
	}
	if o.ReplayBudgetS > 0 {
		s += fmt.Sprintf(" (budget: captured / replay rate + 30s = %.0fs)", o.ReplayBudgetS)
	}
	return s
}

// printIssue15 prints the two tables of issue 15's acceptance: the client's view at
// the peak, and what followed it.
func printIssue15(w io.Writer, ran []Report) {
	fmt.Fprintln(w, "at the peak (requests sent on the plateau; goodput = 2xx within the SLO, share of sent)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "proxy\tgoodput\tpages\tstatic\tsearch\torders 2xx\tback office\tp99 admitted\tclient timeouts\t")
	for _, r := range ran {
		pk := r.Peak
		if pk == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t\n", r.Name)
			continue
		}
		g := pk.ClassGoodputPct
		fmt.Fprintf(tw, "%s\t%.1f%%\t%.1f%%\t%.1f%%\t%.1f%%\t%.1f%%\t%.1f%%\t%s\t%d\t\n", r.Name, pk.GoodputPct,
			g[clsProduct], g[clsStatic], g[clsSearch], g[clsCheckout], g[clsBackoffice], fmtMS(pk.AdmittedP99ms), pk.ClientTimeouts)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nafter the peak (steady traffic; exit = last degraded -> normal on floodgate_degraded)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "proxy\tentries/exits\texit after plateau\texit after steady\trecovery goodput\trefused after exit\tcaptured\tlast at origin after exit\tbudget\tlost\tprocessed twice\tkeys deduplicated\t")
	for _, r := range ran {
		ee, ep, es := "n/a", "-", "-"
		if m := r.Modes; m != nil {
			ee = fmt.Sprintf("%d/%d", m.Entries, m.Exits)
			switch {
			case m.DegradedAtEnd:
				ep, es = "never", "never"
			case m.Exits > 0:
				ep, es = fmt.Sprintf("%.1fs", m.ExitAfterPeakS), fmt.Sprintf("%.1fs", m.ExitAfterSteadyS)
			}
		}
		rg, ra := "-", "-"
		if rc := r.Recovery; rc != nil {
			rg, ra = fmt.Sprintf("%.1f%%", rc.GoodputPct), fmt.Sprintf("%d of %d", rc.RefusedAfterExit, rc.SentAfterExit)
		}
		o := r.Orders
		last, budget := "-", "-"
		if o.CapturedAfterExitS != -1 && o.CapturedLastAtS >= 0 {
			last = fmt.Sprintf("%.1fs", o.CapturedAfterExitS)
		} else if o.CapturedLastAtS >= 0 {
			last = fmt.Sprintf("at %.1fs", o.CapturedLastAtS)
		}
		if o.ReplayBudgetS > 0 {
			budget = fmt.Sprintf("%.0fs", o.ReplayBudgetS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t\n", r.Name, ee, ep, es, rg, ra, o.Captured, last, budget, o.Lost, o.DupOrders, o.DupKeys)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nissue 15's acceptance, judged on this run")
	for _, r := range ran {
		if f := acceptance(r); len(f) > 0 {
			fmt.Fprintf(w, "  %s: fails: %s\n", r.Name, strings.Join(f, "; "))
		} else {
			fmt.Fprintf(w, "  %s: passes\n", r.Name)
		}
	}
	fmt.Fprintln(w)
}

// acceptance lists the checks of issue 15's acceptance that run r fails; a proxy
// without a degraded mode (no floodgate_degraded) is not judged on leaving it.
func acceptance(r Report) []string {
	var f []string
	fail := func(format string, a ...any) { f = append(f, fmt.Sprintf(format, a...)) }
	pk := r.Peak
	if pk == nil {
		return []string{"no peak measured"}
	}
	g := pk.ClassGoodputPct
	if pk.GoodputPct < 95 {
		fail("goodput %.1f%% < 95%%", pk.GoodputPct)
	}
	if g[clsProduct] < 99 {
		fail("pages %.1f%% < 99%%", g[clsProduct])
	}
	if g[clsBackoffice] < 99.9 {
		fail("back office %.1f%% < 99.9%%", g[clsBackoffice])
	}
	if g[clsCheckout] < 100 {
		fail("orders 2xx %.1f%% < 100%%", g[clsCheckout])
	}
	if pk.AdmittedP99ms >= pk.SLOms {
		fail("p99 admitted %s >= %s", fmtMS(pk.AdmittedP99ms), fmtMS(pk.SLOms))
	}
	if pk.ClientTimeouts > 0 {
		fail("%d client timeouts", pk.ClientTimeouts)
	}
	if m := r.Modes; m != nil {
		switch {
		case m.Entries != 1 || m.Exits != 1:
			fail("%d entries, %d exits (want 1 and 1)", m.Entries, m.Exits)
		case m.DegradedAtEnd:
			fail("still degraded at the end")
		case r.ExitBudgetS > 0 && m.ExitAfterSteadyS > r.ExitBudgetS:
			fail("exit %.1fs after steady traffic > hold + 3 windows = %.0fs", m.ExitAfterSteadyS, r.ExitBudgetS)
		}
	}
	if rc := r.Recovery; rc != nil && rc.RefusedAfterExit > 0 {
		fail("%d refused after the exit", rc.RefusedAfterExit)
	}
	o := r.Orders
	if o.CapturedMissing > 0 {
		fail("%d captured orders never reached the origin", o.CapturedMissing)
	} else if o.ReplayBudgetS > 0 && o.CapturedAfterExitS > o.ReplayBudgetS {
		fail("last captured order %.0fs after the exit > %.0fs", o.CapturedAfterExitS, o.ReplayBudgetS)
	}
	if o.Lost > 0 {
		fail("%d orders lost", o.Lost)
	}
	if o.DupOrders > 0 {
		fail("%d orders processed twice", o.DupOrders)
	}
	return f
}

// stillArriving says, after a count of missing orders, whether replay was still
// delivering them when the wait ended, and how long the rest would take at that rate.
func stillArriving(o Orders) string {
	if o.Lost == 0 || o.StillArrivingPerS <= 0 {
		return ""
	}
	return fmt.Sprintf(" (still arriving at %.0f/s: ~%.0fs more)", o.StillArrivingPerS, float64(o.Lost)/o.StillArrivingPerS)
}

// disturbed reports whether something else competed for the CPUs during the load:
// much CPU time that belongs to none of the run's processes, on average or over a
// few seconds (loopback networking leaves some softirq time unattributed, about
// 10-20% of a CPU at the peak here, hence the margins), or a generator that sent
// late (1-2 ms at p99 when the machine is otherwise idle).
func disturbed(r Report) bool {
	if r.Generator.LagP99ms > 10 || r.Generator.Overflow > 0 {
		return true
	}
	return r.Machine != nil && (r.Machine.OtherPct > 35 || r.Machine.PeakOtherPct > 70)
}

// classOK is a class's success ratio: ok% (served or cached), or answered% for
// checkout when answered is set (a captured order counts as a success there).
func classOK(r Report, c int, answered bool) float64 {
	if c >= len(r.Classes) {
		return math.NaN()
	}
	if answered {
		return r.Classes[c].AnsweredPct
	}
	return r.Classes[c].OKPct
}

func cmdReport(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: spike report FILE.json...")
	}
	rs, err := readReports(args)
	if err != nil {
		return err
	}
	printComparison(stdout, rs)
	return nil
}
