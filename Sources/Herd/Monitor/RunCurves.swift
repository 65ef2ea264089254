import Foundation

/// A run's curves from its events.jsonl: training loss, held-out loss and
/// tokens/s by step. A restart replays steps from its checkpoint: the
/// later value of a step replaces the earlier one, so each curve is the
/// history of the run that survived.
public struct RunCurves: Sendable, Equatable {
    public var loss: [(step: Int, value: Double)] = []
    public var validationLoss: [(step: Int, value: Double)] = []
    public var tokensPerSecond: [(step: Int, value: Double)] = []

    public static func == (a: RunCurves, b: RunCurves) -> Bool {
        func same(_ x: [(step: Int, value: Double)], _ y: [(step: Int, value: Double)]) -> Bool {
            x.count == y.count && zip(x, y).allSatisfy { $0.step == $1.step && $0.value == $1.value }
        }
        return same(a.loss, b.loss) && same(a.validationLoss, b.validationLoss) && same(a.tokensPerSecond, b.tokensPerSecond)
    }

    public static func read(run: String) -> RunCurves {
        guard let events = try? RunDirectory(run).readEvents() else { return RunCurves() }
        var loss: [Int: Double] = [:], val: [Int: Double] = [:], tps: [Int: Double] = [:]
        for e in events {
            guard let step = e.step else { continue }
            switch e.event {
            case .step:
                if let v = e.loss { loss[step] = v }
                if let v = e.tokensPerSecond { tps[step] = v }
            case .eval:
                if let v = e.validationLoss { val[step] = v }
            default: break
            }
        }
        func sorted(_ d: [Int: Double]) -> [(step: Int, value: Double)] { d.keys.sorted().map { ($0, d[$0]!) } }
        return RunCurves(loss: sorted(loss), validationLoss: sorted(val), tokensPerSecond: sorted(tps))
    }
}

/// A line chart as a standalone SVG file: axes with ticks, one polyline a
/// series, a legend. No fonts or scripts are fetched; any viewer opens it.
public enum CurvePlot {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        public init(name: String, points: [(x: Double, y: Double)], color: String) {
            self.name = name; self.points = points; self.color = color
        }
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    public static func color(_ i: Int) -> String { palette[i % palette.count] }

    public static func svg(title: String, xLabel: String, yLabel: String, series: [Series],
                           width: Double = 720, height: Double = 400) -> String {
        let left = 70.0, right = 20.0, top = 40.0, bottom = 50.0
        let pw = width - left - right, ph = height - top - bottom
        let all = series.flatMap(\.points)
        var x0 = all.map(\.x).min() ?? 0, x1 = all.map(\.x).max() ?? 1
        var y0 = all.map(\.y).min() ?? 0, y1 = all.map(\.y).max() ?? 1
        if x1 <= x0 { x1 = x0 + 1 }
        if y1 <= y0 { y0 -= 0.5; y1 += 0.5 }
        let pad = (y1 - y0) * 0.05
        // Values that cannot be negative (a rate, a loss) keep the axis at or above 0.
        y0 = y0 >= 0 ? max(0, y0 - pad) : y0 - pad
        y1 += pad
        if x0 > 0 && x0 < (x1 - x0) * 0.2 { x0 = 0 }
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func label(_ v: Double) -> String {
            let a = abs(v)
            if a >= 1e6 { return String(format: "%.3gM", v / 1e6) }
            if a >= 1e4 { return String(format: "%.3gk", v / 1e3) }
            if a < 1e-2 && a > 0 { return String(format: "%.2g", v) }
            return a >= 100 ? String(format: "%.0f", v) : String(format: "%.3g", v)
        }
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(f(width))" height="\(f(height))" viewBox="0 0 \(f(width)) \(f(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(width / 2))" y="22" text-anchor="middle" font-size="15">\(escape(title))</text>
            <g stroke="#ccc" stroke-width="1">
            """
        var ticks = ""
        for i in 0...5 {
            let yv = y0 + (y1 - y0) * Double(i) / 5, xv = x0 + (x1 - x0) * Double(i) / 5
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(py(yv)))\" y2=\"\(f(py(yv)))\"/>"
            ticks += "<text x=\"\(f(left - 6))\" y=\"\(f(py(yv) + 4))\" text-anchor=\"end\">\(label(yv))</text>"
            ticks += "<text x=\"\(f(px(xv)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(label(xv))</text>"
        }
        s += "</g>\n<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#333\"/>\n" + ticks
        s += "\n<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        s += "\n<text transform=\"translate(16 \(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (i, ser) in series.enumerated() where !ser.points.isEmpty {
            let pts = ser.points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            s += "<polyline class=\"series\" data-name=\"\(escape(ser.name))\" data-points=\"\(ser.points.count)\" fill=\"none\" stroke=\"\(ser.color)\" stroke-width=\"1.5\" points=\"\(pts)\"/>\n"
            if ser.points.count == 1 { s += "<circle cx=\"\(f(px(ser.points[0].x)))\" cy=\"\(f(py(ser.points[0].y)))\" r=\"3\" fill=\"\(ser.color)\"/>\n" }
            let ly = top + 14 + Double(i) * 16
            s += "<line x1=\"\(f(left + pw - 150))\" x2=\"\(f(left + pw - 130))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" stroke=\"\(ser.color)\" stroke-width=\"2\"/>"
            s += "<text x=\"\(f(left + pw - 125))\" y=\"\(f(ly))\">\(escape(ser.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    public static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A run's loss curves (training and held-out) and, below, its tokens/s.
    public static func runFigure(run: String, title: String? = nil) -> String? {
        let c = RunCurves.read(run: run)
        guard !c.loss.isEmpty else { return nil }
        let name = title ?? (run as NSString).lastPathComponent
        let loss = svg(title: "\(name): loss", xLabel: "step", yLabel: "loss", series: [
            Series(name: "training loss", points: c.loss.map { (Double($0.step), $0.value) }, color: color(0)),
            Series(name: "held-out loss", points: c.validationLoss.map { (Double($0.step), $0.value) }, color: color(1)),
        ])
        let speed = svg(title: "\(name): tokens/s", xLabel: "step", yLabel: "tokens/s", series: [
            Series(name: "tokens/s", points: c.tokensPerSecond.map { (Double($0.step), $0.value) }, color: color(2)),
        ], height: 260)
        // Two charts stacked in one file.
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"660\">\n"
            + "<svg y=\"0\" width=\"720\" height=\"400\">" + loss.drop { $0 != ">" }.dropFirst() + "<svg y=\"400\" width=\"720\" height=\"260\">" + speed.drop { $0 != ">" }.dropFirst() + "</svg>\n"
    }
}
