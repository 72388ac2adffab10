// Command testnet-grants answers, for a tailnet policy file and a set of devices, what each source may do at
// each destination, with code this project did not write: headscale's policy engine compiles the policy into
// each destination's packet filter, and tailscaled's own filter (wgengine/filter) decides on it.
//
// Input (stdin): {"policy": "<HuJSON>", "devices": [{"name", "ipv4", "login" | "tags"}],
//
//	"queries": [{"src": device, "dst": device, "port": N}]}
//
// Output (stdout): {"tests": "" or why the policy's own tests fail, "answers": [{"accept": bool,
// "caps": {capability: [values]}}]}, one answer per query, in order. Exit status 2 with one line on stderr
// when headscale refuses the policy.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/rs/zerolog"
	"go4.org/netipx"
	"tailscale.com/tailcfg"
	"tailscale.com/types/logger"
	"tailscale.com/wgengine/filter"

	"tailnet-llm-gateway/testnet/world"
)

type query struct {
	Src  string `json:"src"`
	Dst  string `json:"dst"`
	Port uint16 `json:"port"`
}

type answer struct {
	Accept bool               `json:"accept"`
	Caps   tailcfg.PeerCapMap `json:"caps"`
}

func main() {
	// headscale logs every policy recompilation at debug level.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	var input struct {
		Policy  string         `json:"policy"`
		Devices []world.Device `json:"devices"`
		Queries []query        `json:"queries"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
		fail("reading the input: %v", err)
	}
	tailnet, err := world.New([]byte(input.Policy), input.Devices)
	if err != nil {
		fail("%v", err)
	}
	byName := map[string]int{}
	for i, device := range input.Devices {
		byName[device.Name] = i
	}
	filters := map[int]*filter.Filter{}
	destination := func(i int) *filter.Filter {
		if f, ok := filters[i]; ok {
			return f
		}
		rules, err := tailnet.Filter(i)
		if err != nil {
			fail("compiling the filter of %s: %v", input.Devices[i].Name, err)
		}
		matches, err := filter.MatchesFromFilterRules(rules)
		if err != nil {
			fail("the filter of %s: %v", input.Devices[i].Name, err)
		}
		var local netipx.IPSetBuilder
		local.Add(input.Devices[i].IPv4)
		localNets, _ := local.IPSet()
		filters[i] = filter.New(matches, nil, localNets, nil, nil, logger.Discard)
		return filters[i]
	}
	output := struct {
		Tests   string   `json:"tests"`
		Answers []answer `json:"answers"`
	}{Answers: []answer{}}
	if err := tailnet.RunTests(); err != nil {
		output.Tests = err.Error()
	}
	for _, q := range input.Queries {
		src, okSrc := byName[q.Src]
		dst, okDst := byName[q.Dst]
		if !okSrc || !okDst {
			fail("query names a device not in the input: %s -> %s", q.Src, q.Dst)
		}
		from, to := input.Devices[src].IPv4, input.Devices[dst].IPv4
		f := destination(dst)
		output.Answers = append(output.Answers, answer{
			Accept: f.CheckTCP(from, to, q.Port) == filter.Accept,
			Caps:   f.CapsWithValues(from, to),
		})
	}
	if err := json.NewEncoder(os.Stdout).Encode(output); err != nil {
		fail("writing the output: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}
