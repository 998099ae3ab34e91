<?php
/*
 * b_orderbridge_queue: the snapshots that orderbridge has not accepted yet, shared by every
 * web node of the site (the file spool it replaces was per node). One row per snapshot.
 * Invariants:
 * - ID grows with every row, so ID order is the order of the snapshots (oldest first);
 * - BODY is the exact signed JSON, or '' when the agent must rebuild the snapshot from the
 *   order (its build failed, or it is longer than a TEXT column holds). Never NULL: the
 *   ORM creates every column NOT NULL (mysqlcommonconnection.php createTable). WEBHOOK_ID
 *   stays the same for every re-send;
 * - STATE is 'pending' (to be sent) or 'rejected' (refused as invalid: kept for a human);
 * - a pending row is due when NEXT_AT (unix seconds) <= now. A node that sends a row first
 *   claims it with one compare-and-set UPDATE that moves NEXT_AT a lease ahead and adds one
 *   to ATTEMPTS; ATTEMPTS only grows, so a claim that read an old row always loses.
 * Columns as the ORM makes them (mysqlcommonsqlhelper.php getColumnTypeByField): integers are
 * `int`, so the unix times hold until 2038; BODY is `text`, at most MAX_BODY bytes.
 */

namespace Orderbridge;

use Bitrix\Main\Application;
use Bitrix\Main\ORM\Data\DataManager;
use Bitrix\Main\ORM\Fields\IntegerField;
use Bitrix\Main\ORM\Fields\StringField;
use Bitrix\Main\ORM\Fields\TextField;

class QueueTable extends DataManager
{
	public const PENDING = 'pending';
	public const REJECTED = 'rejected';
	/** A MySQL TEXT column holds 65,535 bytes. */
	public const MAX_BODY = 65535;

	public static function getTableName()
	{
		return 'b_orderbridge_queue';
	}

	public static function getMap()
	{
		return [
			new IntegerField('ID', ['primary' => true, 'autocomplete' => true]),
			new StringField('ORDER_ID', ['required' => true, 'size' => 32]),
			new StringField('WEBHOOK_ID', ['required' => true, 'size' => 64]),
			new TextField('BODY'),
			new IntegerField('CREATED_AT', ['required' => true]),
			new IntegerField('NEXT_AT', ['required' => true]),
			new IntegerField('ATTEMPTS', ['default_value' => 0]),
			new StringField('LAST_ERROR', ['size' => 255, 'default_value' => '']),
			new StringField('STATE', ['required' => true, 'size' => 16, 'default_value' => self::PENDING]),
		];
	}

	/**
	 * Takes a row for one send: true for exactly one of the nodes that read it with these
	 * NEXT_AT and ATTEMPTS. The ORM's update() can only say WHERE ID = ?, so this is one
	 * UPDATE with the old values in its WHERE; MySQL runs it atomically and reports the rows
	 * it changed (mysqli affected_rows, Connection::getAffectedRowsCount()).
	 */
	public static function claim(int $id, int $nextAt, int $attempts, int $newNextAt): bool
	{
		$connection = Application::getConnection();
		$h = $connection->getSqlHelper();
		$connection->queryExecute('UPDATE ' . $h->quote(self::getTableName())
			. ' SET ' . $h->quote('NEXT_AT') . ' = ' . $newNextAt
			. ', ' . $h->quote('ATTEMPTS') . ' = ' . ($attempts + 1)
			. ' WHERE ' . $h->quote('ID') . ' = ' . $id
			. ' AND ' . $h->quote('NEXT_AT') . ' = ' . $nextAt
			. ' AND ' . $h->quote('ATTEMPTS') . ' = ' . $attempts);
		return $connection->getAffectedRowsCount() === 1;
	}

	/** Creates the table (from getMap) and its index, unless it exists. */
	public static function createIfMissing(): void
	{
		$connection = Application::getConnection();
		if (!$connection->isTableExists(self::getTableName())) {
			self::getEntity()->createDbTable();
			$connection->createIndex(self::getTableName(), 'ix_orderbridge_queue_due', ['STATE', 'NEXT_AT']);
		}
	}

	public static function dropIfExists(): void
	{
		$connection = Application::getConnection();
		if ($connection->isTableExists(self::getTableName())) {
			$connection->dropTable(self::getTableName());
		}
	}
}
