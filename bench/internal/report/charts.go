package report

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Series is one colour of a grouped chart: a value per group.
type Series struct {
	Name   string
	Values []float64
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// Grouped writes a horizontal grouped bar chart: per group, a bar per series.
func Grouped(path, title, unit string, groups []string, series []Series) error {
	labels := make([]string, len(groups))
	for i, g := range groups {
		labels[len(groups)-1-i] = g
	}
	rev := make([]Series, len(series))
	for k, s := range series {
		rev[k] = Series{Name: s.Name, Values: make([]float64, len(s.Values))}
		for i, v := range s.Values {
			rev[k].Values[len(s.Values)-1-i] = v
		}
	}
	return grouped(path, title, unit, labels, rev)
}

func grouped(path, title, unit string, labels []string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = unit
	p.X.Min = 0
	rowHeight := vg.Points(22)
	barWidth := rowHeight * 0.8 / vg.Length(len(series))
	for k, s := range series {
		bc, err := plotter.NewBarChart(plotter.Values(s.Values), barWidth)
		if err != nil {
			return err
		}
		bc.Horizontal = true
		bc.Color = palette[k%len(palette)]
		bc.LineStyle.Width = 0
		bc.Offset = (vg.Length(k) - vg.Length(len(series)-1)/2) * barWidth
		p.Add(bc)
		if s.Name != "" {
			p.Legend.Add(s.Name, bc)
		}
	}
	// Room on the right for the legend.
	var top float64
	for _, s := range series {
		for _, v := range s.Values {
			top = max(top, v)
		}
	}
	p.X.Max = top * 1.2
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	p.NominalY(labels...)
	height := vg.Length(len(labels))*rowHeight + vg.Points(90)
	return p.Save(vg.Points(720), height, path)
}
