// Command api-composition serves a profile page composed from three
// services — users, orders and recommendations — called at once over HTTP
// with bulwark's fanout. When a service is down the page is still served,
// with what the others answered and, for the missing part, a default
// (recommendations) or the last good answer (orders). Only the user is
// indispensable: without it the page fails.
//
// The three services are local HTTP servers in the same program, switched
// down and up in turn:
//
//	go run ./examples/api-composition
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/fanout"
	"github.com/bulwarkrpc/bulwark/timeout"
)

func main() {
	if _, err := play(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// User, Order and the recommendations are what the three services answer.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type Order struct {
	ID    int `json:"id"`
	Cents int `json:"cents"`
}

// Profile is the composed page.
type Profile struct {
	User            User     `json:"user"`
	Orders          []Order  `json:"orders"`
	Recommendations []string `json:"recommendations"`
	// Degraded names the parts answered by a default or a cached value.
	Degraded []string `json:"degraded,omitempty"`
}

// A service's mode: up, down (503), or slow (longer than the caller's
// deadline for it).
const (
	up int32 = iota
	down
	slow
)

// service is one local HTTP service whose mode can be switched.
type service struct {
	*httptest.Server
	mode atomic.Int32
}

func newService(answer func(id string) any) *service {
	s := &service{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.mode.Load() {
		case down:
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		case slow:
			<-r.Context().Done() // answers only once the caller has given up
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer(r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]))
	}))
	return s
}

// composer is the API: it calls the three services at once, each through
// its own policies.
type composer struct {
	fan                          *fanout.Fanout
	client                       *http.Client
	usersURL, ordersURL, recsURL string

	users  *bulwark.Stack              // a deadline; no fallback: the page needs the user
	orders *bulwark.Pipeline[[]Order]  // a deadline, then the last good orders
	recs   *bulwark.Pipeline[[]string] // a deadline, then a default list
	cache  *fallback.Cache[[]Order]    // closed with the composer
}

func newComposer(client *http.Client, usersURL, ordersURL, recsURL string) (*composer, error) {
	fan, err := fanout.New(fanout.Config{Name: "profile"})
	if err != nil {
		return nil, err
	}
	stack := func(total time.Duration) (*bulwark.Stack, error) {
		to, err := timeout.New(timeout.Config{Total: total})
		if err != nil {
			return nil, err
		}
		return bulwark.New(bulwark.Config{Timeout: to})
	}
	users, err := stack(time.Second)
	if err != nil {
		return nil, err
	}
	ordersStack, err := stack(300 * time.Millisecond)
	if err != nil {
		return nil, err
	}
	cache, err := fallback.NewCache(fallback.CacheConfig[[]Order]{MaxStale: time.Hour})
	if err != nil {
		return nil, err
	}
	orders, err := bulwark.NewPipeline(bulwark.PipelineConfig[[]Order]{Stack: ordersStack, Key: "orders", Fallback: cache})
	if err != nil {
		return nil, err
	}
	recsStack, err := stack(300 * time.Millisecond)
	if err != nil {
		return nil, err
	}
	def, err := fallback.NewValue(fallback.ValueConfig[[]string]{Value: []string{"bestsellers"}})
	if err != nil {
		return nil, err
	}
	recs, err := bulwark.NewPipeline(bulwark.PipelineConfig[[]string]{Stack: recsStack, Key: "recs", Fallback: def})
	if err != nil {
		return nil, err
	}
	return &composer{fan: fan, client: client, usersURL: usersURL, ordersURL: ordersURL, recsURL: recsURL,
		users: users, orders: orders, recs: recs, cache: cache}, nil
}

func (c *composer) Close() { c.cache.Close() }

// ServeHTTP answers GET /profile/{id}.
func (c *composer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	// The page's own deadline: a branch still running then is left out.
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()

	g := c.fan.Gather()
	user := fanout.Add(g, "users", c.users, func(ctx context.Context) (User, error) {
		return getJSON[User](ctx, c.client, c.usersURL+"/users/"+id)
	})
	orders := fanout.AddPipeline(g, "orders", c.orders, id, func(ctx context.Context) ([]Order, error) {
		return getJSON[[]Order](ctx, c.client, c.ordersURL+"/orders/"+id)
	})
	recs := fanout.AddPipeline(g, "recommendations", c.recs, id, func(ctx context.Context) ([]string, error) {
		return getJSON[[]string](ctx, c.client, c.recsURL+"/recommendations/"+id)
	})
	_ = g.Run(ctx) // a *fanout.PartialError names the missing parts; each Result says the same

	u, err := user.Get()
	if err != nil { // err names an internal address: it is for the logs, not for the client
		http.Error(w, "profile unavailable: the users service did not answer", http.StatusBadGateway)
		return
	}
	p := Profile{User: u, Orders: orders.Or([]Order{}), Recommendations: recs.Or([]string{})}
	for _, part := range []interface {
		Name() string
		Status() fanout.Status
	}{orders, recs} {
		if part.Status() != fanout.StatusSuccess {
			p.Degraded = append(p.Degraded, part.Name())
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p)
}

// getJSON fetches url and decodes its JSON body; a status other than 200
// is an error.
func getJSON[T any](ctx context.Context, client *http.Client, url string) (T, error) {
	var v T
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return v, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return v, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// Answer is what the page answered in one phase.
type Answer struct {
	Phase   string
	Status  int
	Profile Profile
	Body    string
}

// play starts the three services and the API, and asks for the same
// profile while the services go down one after another.
func play(w io.Writer) ([]Answer, error) {
	users := newService(func(id string) any { return User{ID: id, Name: "Ada Lovelace"} })
	defer users.Close()
	orders := newService(func(string) any { return []Order{{ID: 1, Cents: 1250}, {ID: 2, Cents: 399}} })
	defer orders.Close()
	recs := newService(func(string) any { return []string{"difference engine", "analytical engine"} })
	defer recs.Close()

	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	c, err := newComposer(client, users.URL, orders.URL, recs.URL)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	mux := http.NewServeMux()
	mux.Handle("GET /profile/{id}", c)
	api := httptest.NewServer(mux)
	defer api.Close()

	var answers []Answer
	for _, phase := range []struct {
		name string
		set  func()
	}{
		{"all services up", func() {}},
		{"recommendations down", func() { recs.mode.Store(down) }},
		{"orders too slow as well", func() { orders.mode.Store(slow) }},
		{"users down", func() { users.mode.Store(down) }},
	} {
		phase.set()
		a, err := get(client, api.URL+"/profile/42")
		if err != nil {
			return answers, fmt.Errorf("%s: %w", phase.name, err)
		}
		a.Phase = phase.name
		fmt.Fprintf(w, "%-24s %d %s\n", phase.name+":", a.Status, a.Body)
		answers = append(answers, a)
	}
	return answers, nil
}

func get(client *http.Client, url string) (Answer, error) {
	resp, err := client.Get(url)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &a.Profile); err != nil {
			return a, err
		}
	}
	return a, nil
}
