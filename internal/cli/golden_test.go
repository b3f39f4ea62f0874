package cli

import (
	"regexp"
	"strings"
)

var (
	// clockTimes are the times a command printed: the clock's, not the test's.
	clockTimes = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b`)
	// durations are ages, ETAs and run times, in kubectl's and the estimator's forms (45s, 3m20s, 2d3h, >99d).
	durations = regexp.MustCompile(`(^|\s)>?(\d+[smhd])+(\s|$)`)
	// columnGaps separate a table's columns; their width follows the durations above.
	columnGaps = regexp.MustCompile(` {3,}`)
)

// normaliseTable replaces what changes from run to run in get's and wait's output (times, durations) and lines
// the tables up again; matchGolden compares the result.
func normaliseTable(s string) string {
	s = clockTimes.ReplaceAllString(s, "<time>")
	for durations.MatchString(s) { // matches next to each other share a space
		s = durations.ReplaceAllString(s, "${1}<dur>${3}")
	}
	return realign(s)
}

// realign pads the columns of each table (a run of lines with column gaps) to the width of their widest cell,
// as the table printed them before normalise changed their cells.
func realign(s string) string {
	lines := strings.Split(s, "\n")
	for first := 0; first < len(lines); {
		last := first
		for last < len(lines) && columnGaps.MatchString(lines[last]) {
			last++
		}
		if last == first {
			first++
			continue
		}
		var rows [][]string
		var widths []int
		for _, line := range lines[first:last] {
			cells := columnGaps.Split(line, -1)
			for i, cell := range cells {
				if i == len(widths) {
					widths = append(widths, 0)
				}
				widths[i] = max(widths[i], len(cell))
			}
			rows = append(rows, cells)
		}
		for r, cells := range rows {
			for i := range cells[:len(cells)-1] {
				cells[i] += strings.Repeat(" ", widths[i]-len(cells[i]))
			}
			lines[first+r] = strings.Join(cells, columnGap)
		}
		first = last
	}
	return strings.Join(lines, "\n")
}
