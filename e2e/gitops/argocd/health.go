// Package argocd runs Argo CD resource health scripts (health.lua) the way Argo CD's util/lua
// does, so the scripts in config/gitops/argocd can be tested without an Argo CD install.
//
// What is mirrored from Argo CD (util/lua/lua.go, VM.runLua and VM.ExecuteHealthLua): a fresh
// gopher-lua state per call, all standard libraries only when UseOpenLibs is set (Argo CD's own
// test harness and built-in scripts) and otherwise just package, base and table (a script from
// argocd-cm without resource.customizations.useOpenLibs); a one-second deadline; the object
// converted value by value into a Lua table and set as the global `obj`; the value the script
// returns encoded to JSON with layeh.com/gopher-json and read back as {status, message}; an
// unknown status turned into Unknown. One deliberate difference: Argo CD's "safe os" library is
// not opened, so a script that needs os fails here instead of depending on it.
package argocd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// HealthStatus is what a health script returns, as gitops-engine's health.HealthStatus.
type HealthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// The statuses Argo CD accepts from a script (gitops-engine health.HealthStatusCode).
var validStatuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// InvalidHealthStatus is the message Argo CD reports when a script returns an unknown status.
const InvalidHealthStatus = "Lua returned an invalid health status"

// ExecuteHealth runs a health script on one object (as decoded from YAML or JSON) and returns
// the health it computes. openLibs is Argo CD's UseOpenLibs.
func ExecuteHealth(obj map[string]any, script string, openLibs bool) (*HealthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, fmt.Errorf("opening the Lua %q library: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, fmt.Errorf("running the health script: %w", err)
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	encoded, err := luajson.Encode(ret)
	if err != nil {
		return nil, fmt.Errorf("encoding the script's result as JSON: %w", err)
	}
	hs := &HealthStatus{}
	if err := json.Unmarshal(encoded, hs); err != nil {
		return nil, fmt.Errorf("reading the script's result %s as {status, message}: %w", encoded, err)
	}
	if !validStatuses[hs.Status] {
		return &HealthStatus{Status: "Unknown", Message: InvalidHealthStatus}, nil
	}
	return hs, nil
}

// decodeValue converts a decoded object into Lua values exactly as Argo CD's decodeValue:
// maps become hash tables, slices array tables (1-based), numbers LNumber, nil LNil.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}
