package operation

import (
	"fmt"
	"regexp"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// cel-go's regular-expression extension (ext.Regex) compiles its pattern on every call:
//
//	regex.extract(target string, pattern string) -> optional<string>
//	regex.extractAll(target string, pattern string) -> list<string>
//	regex.replace(target string, pattern string, replacement string[, count int]) -> string
//
// Patterns are Go's regexp (RE2: linear time in the target, whatever the pattern). regexConstants compiles a
// pattern that is a constant, as nearly every one is, once when the program is built; a constant pattern
// that does not compile, or that has more than one capturing group for extract and extractAll, then fails
// Compile (InvalidConfig, with the field) instead of every evaluation.
var regexConstants = cel.OptimizeRegex(
	&interpreter.RegexOptimization{Function: "regex.extract", OverloadID: "regex_extract_string_string", RegexIndex: 1, Factory: extractOnce},
	&interpreter.RegexOptimization{Function: "regex.extractAll", OverloadID: "regex_extractAll_string_string", RegexIndex: 1, Factory: extractAllOnce},
	&interpreter.RegexOptimization{Function: "regex.replace", RegexIndex: 1, Factory: checkPattern},
)

// compileExtractPattern compiles a pattern of extract or extractAll, which may have at most one capturing
// group: what they return.
func compileExtractPattern(call interpreter.InterpretableCall, pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", call.Function(), err)
	}
	if re.NumSubexp() > 1 {
		return nil, fmt.Errorf("%s: the regular expression %q has more than one capturing group", call.Function(), pattern)
	}
	return re, nil
}

// extractOnce is regex.extract with its pattern compiled once: the first match's capturing group (the whole
// match without one), none when nothing matches or the group is empty.
func extractOnce(call interpreter.InterpretableCall, pattern string) (interpreter.InterpretableCall, error) {
	re, err := compileExtractPattern(call, pattern)
	if err != nil {
		return nil, err
	}
	return interpreter.NewCall(call.ID(), call.Function(), call.OverloadID(), call.Args(), func(args ...ref.Val) ref.Val {
		target, ok := args[0].(types.String)
		if !ok || len(args) != 2 {
			return types.NoSuchOverloadErr()
		}
		m := re.FindStringSubmatch(string(target))
		switch {
		case m == nil:
			return types.OptionalNone
		case len(m) > 1 && m[1] == "":
			return types.OptionalNone
		case len(m) > 1:
			return types.OptionalOf(types.String(m[1]))
		}
		return types.OptionalOf(types.String(m[0]))
	}), nil
}

// extractAllOnce is regex.extractAll with its pattern compiled once: every match's capturing group (the
// whole match without one), leaving out empty groups.
func extractAllOnce(call interpreter.InterpretableCall, pattern string) (interpreter.InterpretableCall, error) {
	re, err := compileExtractPattern(call, pattern)
	if err != nil {
		return nil, err
	}
	return interpreter.NewCall(call.ID(), call.Function(), call.OverloadID(), call.Args(), func(args ...ref.Val) ref.Val {
		target, ok := args[0].(types.String)
		if !ok || len(args) != 2 {
			return types.NoSuchOverloadErr()
		}
		out := []string{}
		for _, m := range re.FindAllStringSubmatch(string(target), -1) {
			switch {
			case len(m) == 1:
				out = append(out, m[0])
			case m[1] != "":
				out = append(out, m[1])
			}
		}
		return types.NewStringList(types.DefaultTypeAdapter, out)
	}), nil
}

// checkPattern refuses a constant pattern of regex.replace that does not compile, and leaves the call as it
// is.
func checkPattern(call interpreter.InterpretableCall, pattern string) (interpreter.InterpretableCall, error) {
	if _, err := regexp.Compile(pattern); err != nil {
		return nil, fmt.Errorf("%s: %w", call.Function(), err)
	}
	return call, nil
}
