<?php
/*
 * The queue of unsent snapshots, over QueueTable (b_orderbridge_queue), for all web nodes.
 * Invariants:
 * - a snapshot is in the table before submit() reports it as not delivered: nothing is
 *   only in memory;
 * - a newer snapshot of an order replaces the older pending ones of that order (the newer
 *   one is added first, then the older ones go, so a crash in between loses nothing);
 * - rows are handed out oldest first (by ID), and a row is sent only after claim() won it;
 *   a claim lasts LEASE seconds, after which a row of a node that died is due again;
 * - rejected rows are never handed out again; they stay for the admin;
 * - the breaker (the time of the last failed send) is an option, shared by the nodes.
 */

namespace Orderbridge;

use Bitrix\Main\Config\Option;

class Queue
{
	/** Seconds a claimed row stays out of the others' reach: more than one send (≤ 2 s) needs. */
	public const LEASE = 120;
	public const DOWN_OPTION = 'down_at';
	/** LAST_ERROR is a VARCHAR(255). */
	public const MAX_ERROR = 255;

	/**
	 * Adds a row; returns its ID. Throws when the database refuses. A null body (the build
	 * failed) or one too long for the column is stored as '': the agent rebuilds it.
	 */
	public function put(string $webhookId, string $orderId, ?string $body, int $now,
		string $state = QueueTable::PENDING, string $error = ''): int
	{
		if ($body !== null && strlen($body) > QueueTable::MAX_BODY) {
			Log::info('snapshot of ' . strlen($body) . ' bytes queued by id, to be rebuilt when re-sent', $orderId);
			$body = null;
		}
		$added = QueueTable::add([
			'ORDER_ID' => $orderId,
			'WEBHOOK_ID' => $webhookId,
			'BODY' => $body ?? '',
			'CREATED_AT' => $now,
			'NEXT_AT' => $now,
			'ATTEMPTS' => 0,
			'LAST_ERROR' => self::cut($error),
			'STATE' => $state,
		]);
		if (!$added->isSuccess()) {
			throw new \RuntimeException('cannot queue the snapshot: ' . implode('; ', $added->getErrorMessages()));
		}
		$id = (int)$added->getId();
		if ($state === QueueTable::PENDING) {
			$this->dropOlder($orderId, $id);
		}
		return $id;
	}

	/**
	 * Pending rows due at $now, oldest first, at most $limit, without their bodies (up to
	 * 64 KB each): body() reads the one being sent.
	 */
	public function due(int $now, int $limit): array
	{
		return QueueTable::getList([
			'select' => ['ID', 'ORDER_ID', 'WEBHOOK_ID', 'NEXT_AT', 'ATTEMPTS'],
			'filter' => ['=STATE' => QueueTable::PENDING, '<=NEXT_AT' => $now],
			'order' => ['ID' => 'ASC'],
			'limit' => $limit,
		])->fetchAll();
	}

	/** The body of row $id ('' = to be rebuilt), or null when the row is gone (replaced meanwhile). */
	public function body(int $id): ?string
	{
		$row = QueueTable::getList(['select' => ['BODY'], 'filter' => ['=ID' => $id]])->fetch();
		return $row ? (string)$row['BODY'] : null;
	}

	/** True when this node won the row (see QueueTable::claim); then it alone sends it. */
	public function claim(array $row, int $now): bool
	{
		return QueueTable::claim((int)$row['ID'], (int)$row['NEXT_AT'], (int)$row['ATTEMPTS'], $now + self::LEASE);
	}

	public function remove(int $id): void
	{
		QueueTable::delete($id);
	}

	/** Keeps the row for the admin, never to be sent again. */
	public function reject(int $id, string $error): void
	{
		QueueTable::update($id, ['STATE' => QueueTable::REJECTED, 'LAST_ERROR' => self::cut($error)]);
	}

	/** Gives a claimed row back after a failed send: due again, still in its place. */
	public function release(int $id, string $error, int $now): void
	{
		QueueTable::update($id, ['NEXT_AT' => $now, 'LAST_ERROR' => self::cut($error)]);
	}

	public function count(): int
	{
		return (int)QueueTable::getCount(['=STATE' => QueueTable::PENDING]);
	}

	public function rejectedCount(): int
	{
		return (int)QueueTable::getCount(['=STATE' => QueueTable::REJECTED]);
	}

	/** @return array the rows of one order, oldest first (for the tests and the admin) */
	public function rowsOf(string $orderId): array
	{
		return QueueTable::getList(['filter' => ['=ORDER_ID' => $orderId], 'order' => ['ID' => 'ASC']])->fetchAll();
	}

	public function markDown(int $now): void
	{
		Option::set(Config::MODULE_ID, self::DOWN_OPTION, (string)$now);
	}

	public function markUp(): void
	{
		if (Option::get(Config::MODULE_ID, self::DOWN_OPTION, '') !== '') {
			Option::set(Config::MODULE_ID, self::DOWN_OPTION, '');
		}
	}

	/** Seconds since the last failed send, or null when the last send went through. */
	public function downFor(int $now): ?int
	{
		$at = Option::get(Config::MODULE_ID, self::DOWN_OPTION, '');
		return ctype_digit($at) ? max(0, $now - (int)$at) : null;
	}

	private function dropOlder(string $orderId, int $newId): void
	{
		$older = QueueTable::getList([
			'select' => ['ID'],
			'filter' => ['=ORDER_ID' => $orderId, '=STATE' => QueueTable::PENDING, '<ID' => $newId],
		])->fetchAll();
		foreach ($older as $row) {
			QueueTable::delete((int)$row['ID']);
		}
	}

	private static function cut(string $error): string
	{
		$cut = substr(preg_replace('/\s+/', ' ', $error), 0, self::MAX_ERROR);
		while ($cut !== '' && !preg_match('//u', $cut)) {
			$cut = substr($cut, 0, -1); // never end inside a UTF-8 character
		}
		return $cut;
	}
}
