// Package world turns a tailnet policy file and the tailnet's devices into what a control server sends
// each device: the packet filter it enforces as a destination (with the application capabilities granted
// to each source), compiled by headscale's policy engine, not by this project.
package world

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/juanfont/headscale/hscontrol/policy/v2"
	"github.com/juanfont/headscale/hscontrol/types"
	"github.com/tailscale/hujson"
	"gorm.io/gorm"
	"tailscale.com/tailcfg"
)

// Device is one machine of the tailnet: a person's (Login set) or a tagged one (Tags set).
type Device struct {
	Name  string     `json:"name"`
	IPv4  netip.Addr `json:"ipv4"`
	IPv6  netip.Addr `json:"ipv6,omitzero"`
	Login string     `json:"login,omitempty"`
	Tags  []string   `json:"tags,omitempty"`
}

// Person is a login and the name a control server shows for it.
type Person struct {
	Login string `json:"login"`
	Name  string `json:"name"`
}

// A user token in a policy: a login, optionally followed by a port list (in `dst`).
var userToken = regexp.MustCompile(`^([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)(?::[0-9*,-]+)?$`)

// Logins lists every login the policy names (groups, tag owners, sources, destinations, tests), so the
// users it refers to exist, as they do in a real tailnet.
func Logins(policy []byte) ([]string, error) {
	standard, err := hujson.Standardize(bytes.Clone(policy)) // it rewrites its input in place
	if err != nil {
		return nil, fmt.Errorf("the policy is not HuJSON: %w", err)
	}
	var tree any
	if err := json.Unmarshal(standard, &tree); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var walk func(any)
	walk = func(node any) {
		switch value := node.(type) {
		case map[string]any:
			for _, child := range value {
				walk(child)
			}
		case []any:
			for _, child := range value {
				walk(child)
			}
		case string:
			if match := userToken.FindStringSubmatch(value); match != nil {
				seen[match[1]] = true
			}
		}
	}
	walk(tree)
	logins := make([]string, 0, len(seen))
	for login := range seen {
		logins = append(logins, login)
	}
	sort.Strings(logins)
	return logins, nil
}

// Tailnet is the policy engine's view of one tailnet: its users and devices.
type Tailnet struct {
	Users   types.Users
	Nodes   types.Nodes
	byLogin map[string]*types.User
	manager *v2.PolicyManager
}

// New compiles `policy` for `devices`; every login the policy or a device names is a user.
func New(policy []byte, devices []Device) (*Tailnet, error) {
	logins, err := Logins(policy)
	if err != nil {
		return nil, err
	}
	for _, device := range devices {
		if device.Login != "" {
			logins = append(logins, device.Login)
		}
	}
	tailnet := &Tailnet{byLogin: map[string]*types.User{}}
	for _, login := range logins {
		if _, ok := tailnet.byLogin[login]; ok {
			continue
		}
		local, _, _ := strings.Cut(login, "@")
		user := types.User{Model: gorm.Model{ID: uint(len(tailnet.Users) + 1)}, Name: local, Email: login}
		tailnet.Users = append(tailnet.Users, user)
		tailnet.byLogin[login] = &tailnet.Users[len(tailnet.Users)-1]
	}
	// Users moved while appending; point the index at the final slice.
	for i := range tailnet.Users {
		tailnet.byLogin[tailnet.Users[i].Email] = &tailnet.Users[i]
	}
	for i, device := range devices {
		node := &types.Node{
			ID:        types.NodeID(i + 1),
			Hostname:  device.Name,
			GivenName: device.Name,
			Hostinfo:  &tailcfg.Hostinfo{Hostname: device.Name},
		}
		ipv4 := device.IPv4
		node.IPv4 = &ipv4
		if device.IPv6.IsValid() {
			ipv6 := device.IPv6
			node.IPv6 = &ipv6
		}
		if len(device.Tags) > 0 {
			node.Tags = append(types.Strings{}, device.Tags...)
		} else {
			user := tailnet.byLogin[device.Login]
			if user == nil {
				return nil, fmt.Errorf("device %s has neither a login nor tags", device.Name)
			}
			id := user.ID
			node.UserID = &id
			node.User = user
		}
		tailnet.Nodes = append(tailnet.Nodes, node)
	}
	loadable, err := withoutAutogroupTagOwners(policy)
	if err != nil {
		return nil, err
	}
	tailnet.manager, err = v2.NewPolicyManager(loadable, tailnet.Users, tailnet.Nodes.ViewSlice())
	if err != nil {
		return nil, fmt.Errorf("headscale refused the policy: %w", err)
	}
	return tailnet, nil
}

// Filter is the packet filter device `index` (into the devices given to New) enforces as a destination.
func (t *Tailnet) Filter(index int) ([]tailcfg.FilterRule, error) {
	return t.manager.FilterForNode(t.Nodes[index].View())
}

// RunTests runs the policy's own `tests` block; nil when all pass (or there are none).
func (t *Tailnet) RunTests() error {
	return t.manager.RunTests()
}

// withoutAutogroupTagOwners drops autogroups (such as autogroup:admin) from `tagOwners`: headscale has no
// admin roles and refuses them there. Tag owners decide who may put a tag on a device, never what a device
// may reach, and the devices here get their tags from their auth key, so nothing this package answers
// depends on them.
func withoutAutogroupTagOwners(policy []byte) ([]byte, error) {
	standard, err := hujson.Standardize(bytes.Clone(policy)) // it rewrites its input in place
	if err != nil {
		return nil, fmt.Errorf("the policy is not HuJSON: %w", err)
	}
	var tree map[string]any
	if err := json.Unmarshal(standard, &tree); err != nil {
		return nil, err
	}
	owners, _ := tree["tagOwners"].(map[string]any)
	for tag, list := range owners {
		kept := []any{}
		for _, owner := range list.([]any) {
			if name, ok := owner.(string); !ok || !strings.HasPrefix(name, "autogroup:") {
				kept = append(kept, owner)
			}
		}
		owners[tag] = kept
	}
	return json.Marshal(tree)
}
