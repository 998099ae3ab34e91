<?php
/*
 * The settings page's queue line and its backfill form (options.php), rendered and posted
 * against the stand-ins.
 */

use Bitrix\Main\Type\DateTime;
use Bitrix\Sale\Order;
use Orderbridge\Queue;
use Orderbridge\QueueTable;
use Orderbridge\Relay;

final class OptionsQueueTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox the settings page shows how many snapshots wait in the queue and how many were rejected */
	public function testThePageShowsTheQueueCounts(): void
	{
		configure();
		$q = new Queue();
		$q->put(Relay::newId(), '1', '{}', 100);
		$q->put(Relay::newId(), '2', '{}', 100);
		$q->put(Relay::newId(), '3', '{}', 100, QueueTable::REJECTED, 'HTTP 400');
		$html = options_page();
		ok(strpos($html, 'Queue: 2 waiting to be sent, 1 rejected by orderbridge') !== false, 'the counts');
		ok(strpos($html, 'name="spool_dir"') === false, 'no spool directory setting any more');
	}

	/** @testdox the backfill form sends existing orders in a slice; what orderbridge did not take is queued */
	public function testTheBackfillFormSendsExistingOrders(): void
	{
		configure('http://127.0.0.1:' . free_port()); // nobody listens: every order is queued
		foreach ([1, 2, 3] as $id) {
			Order::$saved[$id] = individual_order(['ID' => $id, 'DATE_UPDATE' => new DateTime('2026-02-10 12:00:00')]);
		}
		$html = options_page(['backfill_start' => 'Start', 'backfill_since' => '2026-01-01']);
		ok(strpos($html, 'backfill: 3/3 orders, last id 3') !== false, 'the progress line: ' . $html);
		ok(strpos($html, 'backfill: done, 3 orders sent, 3 queued for the agent, 0 rejected') !== false, 'the result');
		ok(strpos($html, 'Queue: 3 waiting to be sent') !== false, 'the queue line counts them');
		ok(strpos($html, 'name="backfill_resume"') === false, 'nothing to continue');
		$html = options_page(['backfill_start' => 'Start', 'backfill_since' => '2026-02-30']);
		ok(strpos($html, 'backfill: --since: not a date (YYYY-MM-DD): &quot;2026-02-30&quot;') !== false, 'a bad date is refused');
	}

	/** @testdox a backfill without the session token does nothing */
	public function testABackfillWithoutTheSessionTokenDoesNothing(): void
	{
		configure('http://127.0.0.1:' . free_port());
		Order::$saved[1] = individual_order(['ID' => 1, 'DATE_UPDATE' => new DateTime('2026-02-10 12:00:00')]);
		$html = options_page(['backfill_start' => 'Start', 'backfill_since' => '2026-01-01', 'sessid' => 'forged']);
		ok(strpos($html, 'backfill:') === false, 'no run');
		eq(0, (new Queue())->count());
	}
}
