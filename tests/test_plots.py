"""The plots the scripts write: nothing cut off, every colour and line explained,
task counts on the task axis, empty results said in the plot, no empty grid cells."""
import numpy as np
import pytest
from matplotlib import image

import analyze
import fixed_points
import generalize
import plots
import results
import sparsity

N_TASKS = [2, 3, 6, 12, 24]


@pytest.fixture
def saved(monkeypatch):
    """The figures the code under test saves (instead of writing them)."""
    figures = []
    monkeypatch.setattr(plots, 'save_figure', lambda fig, path, pdf=True: figures.append(fig))
    return figures


def legend_texts(legend):
    return [t.get_text() for t in legend.get_texts()]


def test_trajectories_explain_the_quadrant_colours_and_keep_the_pc3_label(saved, tmp_path):
    proj = np.random.default_rng(0).standard_normal((8, 5, 3)).cumsum(1)
    colors = [analyze._QUAD_COLORS[i % 4] for i in range(8)]
    analyze._plot_trajectories(proj, colors, np.zeros((2, 3)), str(tmp_path))
    ax = saved[0].axes[0]
    labels = legend_texts(ax.get_legend())
    assert labels == ['Q1 (+, +)', 'Q2 (−, +)', 'Q3 (−, −)', 'Q4 (+, −)', 'fixed points']
    assert [h.get_color() for h in ax.get_legend().legend_handles[:4]] == list(analyze._QUAD_COLORS)


def test_saved_3d_figures_include_their_axis_labels(tmp_path, monkeypatch):
    def figure():
        fig = plots.figure(4, 4)
        ax = fig.add_subplot(projection='3d')
        ax.plot([0, 1], [0, 1], [0, 1])
        ax.set(xlabel='PC1', ylabel='PC2', zlabel='PC3')
        return fig

    fig = figure()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    label = fig.axes[0].zaxis.label.get_window_extent(renderer)
    assert label.x1 > fig.get_tightbbox(renderer).x1 * fig.dpi  # matplotlib's tight box leaves it out
    plots.save_figure(fig, str(tmp_path / 'ours.png'), pdf=False)
    plain = figure()
    plain.savefig(tmp_path / 'plain.png')
    ours, theirs = image.imread(tmp_path / 'ours.png'), image.imread(tmp_path / 'plain.png')
    assert ours.shape[1] - theirs.shape[1] > label.width * 200 / fig.dpi * 0.8  # the label fits, at 200 dpi


def test_empty_fixed_point_result_says_so(saved, tmp_path):
    empty = fixed_points.FixedPointResult(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 4, 4)),
                                          np.zeros((0, 4), complex), 16, 16, 0, 100)
    analyze._plot_fixed_points(empty, np.zeros((0, 2)), str(tmp_path))
    for fig in saved:
        assert 'no fixed points found' in ' '.join(t.get_text() for t in fig.axes[0].texts)


def synthetic_results(folder, name, n_tasks=N_TASKS):
    rng = np.random.default_rng(0)
    shape = (len(n_tasks), 3, 4, 2)
    angles = np.full(shape + (2, 2), np.nan)
    angles[..., 0, 1] = 90 + 5 * rng.standard_normal(shape)
    results.save_results(str(folder / f'{name}.npz'), r_sq=0.8 + 0.05 * rng.standard_normal(shape),
                         n_tasks=np.array(n_tasks), angles=angles, train=np.zeros(shape + (0,)))


def test_angle_plot_labels_the_task_counts(saved, tmp_path):
    synthetic_results(tmp_path, 'RNN')
    generalize.plot(str(tmp_path), 'RNN')
    r2, angle = saved
    for fig in (r2, angle):
        ax = fig.axes[0]
        fig.canvas.draw()
        assert [t.get_text() for t in ax.get_xticklabels()] == [str(k) for k in N_TASKS]


def test_legend_stays_off_the_data_and_the_axes_keep_the_width(saved, tmp_path):
    synthetic_results(tmp_path, 'RNN')
    synthetic_results(tmp_path, 'RNN_ID')
    generalize.plot(str(tmp_path), 'RNN')
    fig = saved[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    assert len(fig.legends) == 1  # drawn twice (after the ceiling), kept once
    legend = fig.legends[0]
    assert legend_texts(legend) == ['ceiling 0.975', 'OOD', 'ID']
    box, axes = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert not box.overlaps(axes) and box.y1 < axes.y0  # below the axes
    assert axes.width > 0.75 * fig.bbox.width  # the data, not the legend, fills the figure


def test_figures_of_one_panel_have_one_size(tmp_path):
    sizes = []
    for labels in (['OOD'], ['a long legend entry', 'another long legend entry', 'a third one', 'four']):
        fig, ax = plots.subplots()
        for label in labels:
            ax.plot([1, 2], [0, 1], label=label)
        plots.legend(ax)
        sizes.append(image.imread(plots.save_figure(fig, str(tmp_path / f'{len(labels)}.png'), pdf=False)).shape)
    assert sizes[0] == sizes[1]


def test_sparsity_plot_explains_its_lines(saved):
    sparse = np.array([[0.8, 0.85], [0.9, 0.92]])
    sparsity.plot('x', [2, 24], sparse, 0.05 + 0 * sparse, 10 + 0 * sparse, 'RNN')
    assert legend_texts(saved[0].legends[0]) == ['mean over networks', 'one network (95 % CI)']


@pytest.mark.parametrize('n, grid', [(8, (2, 4)), (64, (8, 8)), (16, (4, 4)), (6, (2, 3)), (7, (2, 4)), (1, (1, 1))])
def test_unit_grids_leave_few_cells_empty(n, grid):
    assert plots.unit_grid(n) == grid


def test_rate_maps_of_a_few_units_with_a_long_title_stay_compact(tmp_path):
    title = 'n_neu-64_network-gpt-2_n_head-8_timing-100-500-0-100_n_batch-300_lr-0.01_nTask24_run0 head 3'
    path = plots.plot_rate_maps(np.random.default_rng(0).random((8, 8, 8)), title, str(tmp_path / 'v.png'))
    height, width = image.imread(path).shape[:2]
    assert width < 2.0 * height  # a 2 × 4 grid, not a title line stretching the figure


@pytest.mark.parametrize('n, text', [(100_000, '1e5'), (20_000, '2e4'), (25_000, '2.5e4'), (1000, '1e3'),
                                     (12_345, '12,345'), (300, '300')])
def test_budgets_are_written_short(n, text):
    assert plots.short_count(n) == text


def test_curves_of_different_training_budgets_say_so(capsys):
    rng = np.random.default_rng(0)
    files = {label: {'n_tasks': np.array(N_TASKS), 'r_sq': rng.random((5, 3, 4, 2)), 'batches': np.full((5, 3), b)}
             for label, b in (('RNN', 100_000), ('FreeRT', 20_000))}
    fig, ax = plots.subplots()
    plots.compare(ax, files, {'RNN': 'fixed RT', 'FreeRT': 'free RT'})
    assert legend_texts(fig.legends[0]) == ['fixed RT (1e5)', 'free RT (2e4)']
    plots.reference(ax, plots.CEILING, 'ceiling')
    plots.legend(ax)  # drawn again: the title stays
    assert fig.legends[0].get_title().get_text() == '(training batches)'
    assert 'different training budgets: RNN 100,000 batches, FreeRT 20,000 batches' in capsys.readouterr().out
    files['RNN']['batches'] = np.full((5, 3), 20_000.0)  # equal budgets: the legend as given
    fig, ax = plots.subplots()
    plots.compare(ax, files, {'RNN': 'fixed RT', 'FreeRT': 'free RT'})
    assert legend_texts(fig.legends[0]) == ['fixed RT', 'free RT']


def test_baseline_is_a_dashed_band_of_the_networks_spread():
    # 4 untrained networks, per-network means 0.1, 0.2, 0.3, 0.4 at each of 2 task counts
    values = np.broadcast_to(np.array([0.1, 0.2, 0.3, 0.4])[None, :, None], (2, 4, 3)).copy()
    _, ax = plots.subplots()
    line = plots.plot_baseline(ax, None, values)
    assert line.get_label() == 'untrained' and line.get_linestyle() == '--'
    assert np.allclose(line.get_ydata(), 0.25)  # the median over networks
    band, = ax.patches
    low, high = band.get_bbox().y0, band.get_bbox().y1
    assert np.allclose([low, high], [0.175, 0.325])  # the interquartile range over networks
    _, ax = plots.subplots()  # a sweep: one file per condition
    line = plots.plot_baseline(ax, [2, 4], [values, values + 0.5])
    assert np.allclose(line.get_ydata(), [0.25, 0.75])
    assert len(ax.collections) == 1  # the band


def test_a_baseline_far_below_the_curves_is_written_not_drawn():
    _, ax = plots.subplots()
    ax.plot([2, 24], [0.6, 0.9])
    bottom = ax.get_ylim()[0]
    plots.plot_baseline(ax, None, np.full((1, 3, 2), -1.5), label='_non-leaky RNN, untrained', floor=0.3)
    assert ax.get_ylim()[0] == bottom  # the curves keep the axes
    assert [t.get_text() for t in ax.texts] == ['non-leaky RNN, untrained: -1.50 ↓']
