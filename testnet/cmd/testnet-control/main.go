// Command testnet-control is a Tailscale control server for the tests: Tailscale's own test control server
// (tstest/integration/testcontrol) and a DERP relay, both on one address the harness picks, with
//
//   - one auth key (read from TESTNET_AUTH_KEY, never from the command line) that every device joins with;
//   - the tags a device advertises when it joins (`--advertise-tags`), as a pre-authorized tagged key gives;
//   - a MagicDNS domain, and for every device the HTTPS capability and a certificate domain under it;
//   - the people (`-people`: host name -> login and name) whose devices those are, as every device
//     sees them in its user profiles (so `tailscale serve` names the real login);
//   - per device, the packet filter and application capabilities the tailnet policy file (`-policy`,
//     re-read when it changes) grants it as a destination, compiled by headscale's policy engine.
//
// It writes {"control": URL, "derp": "host:port"} to `-ready` once it serves, and stops on SIGTERM.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"tailscale.com/derp/derpserver"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"

	"tailnet-llm-gateway/testnet/world"
)

func main() {
	// headscale logs every policy recompilation at debug level.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	listen := flag.String("listen", "127.0.0.1:0", "address for the control server (its host also serves DERP)")
	domain := flag.String("domain", "", "MagicDNS domain, e.g. tail0a1b2c.ts.net")
	policyPath := flag.String("policy", "", "the tailnet policy file (HuJSON)")
	peoplePath := flag.String("people", "", "JSON: device host name -> {login, name}")
	readyPath := flag.String("ready", "", "where to write the control URL and DERP address once serving")
	verbose := flag.Bool("v", false, "log every control request")
	flag.Parse()
	authKey := os.Getenv("TESTNET_AUTH_KEY")
	if *domain == "" || *policyPath == "" || *readyPath == "" || authKey == "" {
		log.Fatal("-domain, -policy, -ready and TESTNET_AUTH_KEY are required")
	}
	people := map[string]world.Person{}
	if *peoplePath != "" {
		if err := readJSON(*peoplePath, &people); err != nil {
			log.Fatalf("reading -people: %v", err)
		}
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		log.Fatalf("-listen: %v", err)
	}

	derpMap, derpAddr := runDERP(host)
	control := &testcontrol.Server{
		DERPMap:        derpMap,
		RequireAuthKey: authKey,
		MagicDNSDomain: *domain,
		DNSConfig:      &tailcfg.DNSConfig{Proxied: true},
		// Non-nil: a device gets the tags it advertises when it joins.
		TagOwners: map[string][]string{},
		AllOnline: true,
		Verbose:   *verbose,
		Logf:      log.Printf,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listening on %s: %v", *listen, err)
	}
	control.ExplicitBaseURL = "http://" + ln.Addr().String()

	shaper := &shaper{control: control, policyPath: *policyPath, people: people, sent: map[key.NodePublic][]byte{}}
	control.ModifyFirstMapResponse = func(res *tailcfg.MapResponse, _ *tailcfg.MapRequest) { shaper.shape(res) }
	control.SetOnMapRequest(shaper.polled)
	go shaper.run()

	server := &http.Server{Handler: control, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := server.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Fatalf("control server: %v", err)
		}
	}()
	ready, _ := json.Marshal(map[string]string{"control": control.ExplicitBaseURL, "derp": derpAddr})
	if err := os.WriteFile(*readyPath, ready, 0o644); err != nil {
		log.Fatalf("writing -ready: %v", err)
	}
	log.Printf("control at %s, DERP at %s", control.ExplicitBaseURL, derpAddr)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	server.Shutdown(ctx)
}

// runDERP serves a DERP relay over TLS (a throwaway certificate: the DERP map marks the node
// InsecureForTests, which tailscaled honours) on `host`, without STUN.
func runDERP(host string) (*tailcfg.DERPMap, string) {
	relay := derpserver.New(key.NewNode(), logger.Discard)
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		log.Fatalf("DERP listener: %v", err)
	}
	server := httptest.NewUnstartedServer(derpserver.Handler(relay))
	server.Listener.Close()
	server.Listener = ln
	// DERP upgrades HTTP/1.1 connections; no HTTP/2.
	server.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	server.StartTLS()
	port := ln.Addr().(*net.TCPAddr).Port
	node := &tailcfg.DERPNode{
		Name: "t1", RegionID: 1, HostName: host, IPv4: host, IPv6: "none",
		DERPPort: port, STUNPort: -1, InsecureForTests: true,
	}
	region := &tailcfg.DERPRegion{RegionID: 1, RegionCode: "test", Nodes: []*tailcfg.DERPNode{node}}
	return &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{1: region}}, ln.Addr().String()
}

// shaper makes every map response say what the policy and the people say. testcontrol sends an allow-all
// filter and made-up logins; the first response of each stream is rewritten in place, and from then on the
// device gets only responses built here (AddRawMapResponse stops testcontrol's own), sent again whenever
// what it should see changes.
type shaper struct {
	control    *testcontrol.Server
	policyPath string
	people     map[string]world.Person

	mu      sync.Mutex
	policy  []byte
	devices []world.Device
	tailnet *world.Tailnet
	index   map[key.NodePublic]int
	sent    map[key.NodePublic][]byte
	fresh   map[key.NodePublic]bool // devices that opened a new map poll since the last send
}

func (s *shaper) polled(node key.NodePublic) {
	// Called with testcontrol's lock held: only note it.
	go func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fresh == nil {
			s.fresh = map[key.NodePublic]bool{}
		}
		s.fresh[node] = true
	}()
}

func (s *shaper) run() {
	for {
		s.refresh()
		for _, node := range s.control.AllNodes() {
			res, err := s.control.MapResponse(&tailcfg.MapRequest{NodeKey: node.Key})
			if err != nil || res == nil {
				continue
			}
			s.shape(res)
			body, _ := json.Marshal(res)
			s.mu.Lock()
			unchanged := reflect.DeepEqual(s.sent[node.Key], body) && !s.fresh[node.Key]
			s.mu.Unlock()
			if unchanged {
				continue
			}
			if s.control.AddRawMapResponse(node.Key, res) {
				s.mu.Lock()
				s.sent[node.Key] = body
				delete(s.fresh, node.Key)
				s.mu.Unlock()
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// refresh compiles the policy for the devices that have joined, when either changed.
func (s *shaper) refresh() {
	policy, err := os.ReadFile(s.policyPath)
	if err != nil {
		log.Printf("reading the policy: %v", err)
		return
	}
	nodes := s.control.AllNodes()
	devices := make([]world.Device, 0, len(nodes))
	index := map[key.NodePublic]int{}
	for i, node := range nodes {
		device := world.Device{Name: node.Hostinfo.Hostname(), IPv4: node.Addresses[0].Addr(), Tags: node.Tags}
		if len(node.Addresses) > 1 {
			device.IPv6 = node.Addresses[1].Addr()
		}
		if len(node.Tags) == 0 {
			device.Login = s.login(node).Login
		}
		devices = append(devices, device)
		index[node.Key] = i
	}
	s.mu.Lock()
	same := string(policy) == string(s.policy) && reflect.DeepEqual(devices, s.devices)
	s.policy, s.devices = policy, devices
	s.mu.Unlock()
	if same {
		return
	}
	tailnet, err := world.New(policy, devices)
	if err != nil {
		// The devices keep the filters they have, as a control server keeps the last good policy.
		log.Printf("the policy was not applied: %v", err)
		return
	}
	if err := tailnet.RunTests(); err != nil {
		log.Printf("the policy's tests fail for these devices: %v", err)
	}
	s.mu.Lock()
	s.tailnet, s.index = tailnet, index
	s.mu.Unlock()
	log.Printf("policy compiled for %d devices", len(devices))
}

// login is the person a device belongs to: from -people by host name, else one made up for it.
func (s *shaper) login(node *tailcfg.Node) world.Person {
	if person, ok := s.people[node.Hostinfo.Hostname()]; ok {
		return person
	}
	name := node.Hostinfo.Hostname()
	return world.Person{Login: name + "@testnet.invalid", Name: name}
}

// shape rewrites a map response for its device: its filter, its HTTPS capability, the people's logins.
func (s *shaper) shape(res *tailcfg.MapResponse) {
	s.mu.Lock()
	tailnet, index := s.tailnet, s.index
	s.mu.Unlock()
	self := res.Node
	// Until the policy is compiled for this device, it accepts nothing.
	filter := []tailcfg.FilterRule{}
	if i, ok := index[self.Key]; ok && tailnet != nil {
		rules, err := tailnet.Filter(i)
		if err == nil && rules != nil {
			filter = rules
		}
	}
	res.PacketFilter = nil
	res.PacketFilters = map[string][]tailcfg.FilterRule{"*": nil, "policy": filter}
	if self.CapMap == nil {
		self.CapMap = tailcfg.NodeCapMap{}
	}
	self.CapMap[tailcfg.CapabilityHTTPS] = nil
	// Each device's user profile under the login of its person.
	owners := map[tailcfg.UserID]*tailcfg.Node{self.User: self}
	for _, peer := range res.Peers {
		owners[peer.User] = peer
	}
	sort.Slice(res.UserProfiles, func(i, j int) bool { return res.UserProfiles[i].ID < res.UserProfiles[j].ID })
	for i, profile := range res.UserProfiles {
		if node, ok := owners[profile.ID]; ok && len(node.Tags) == 0 {
			person := s.login(node)
			res.UserProfiles[i].LoginName = person.Login
			res.UserProfiles[i].DisplayName = person.Name
		}
	}
}

func readJSON(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
