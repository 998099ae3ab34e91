<?php
/*
 * Stand-ins of Bitrix classes for the module's queue table, installer steps and backfill
 * (Bitrix\Main\ORM\Data\DataManager, the admin step pages, CLI). Loaded after stubs.php.
 *
 * One in-memory database (Bitrix\Main\DB\Connection) holds every table that a DataManager
 * names, so ORM calls and raw SQL (the queue's compare-and-set claim) see the same rows.
 * Where Bitrix's behaviour is known, the source is named beside it; where it is not, the
 * stand-in takes the harsher choice: what it does not understand, it throws.
 */

namespace Bitrix\Main {

	/** main/lib/argumentexception.php */
	class ArgumentException extends \Exception
	{
	}

	/**
	 * main/lib/application.php: Application::getConnection($name = '') is the default
	 * connection of .settings.php; here the one in-memory database.
	 */
	final class Application
	{
		public static function getConnection($name = '')
		{
			return DB\Connection::instance();
		}
	}
}

namespace Bitrix\Main\DB {

	/** main/lib/db/sqlexception.php: what a failed query throws (mysqli: the server's text). */
	class SqlQueryException extends \Exception
	{
	}

	/** main/lib/db/mysqlcommonsqlhelper.php: identifiers quoted with backticks; forSql escapes. */
	final class SqlHelper
	{
		public function quote($identifier)
		{
			return '`' . str_replace('`', '', $identifier) . '`';
		}

		public function forSql($value, $maxLength = 0)
		{
			$value = addslashes((string)$value);
			return $maxLength > 0 ? substr($value, 0, $maxLength) : $value;
		}
	}

	/**
	 * main/lib/db/connection.php + mysqliconnection.php, in memory. Tables exist only once
	 * created (createTable, i.e. Entity::createDbTable); any query on a missing table throws
	 * SqlQueryException with MySQL's text ("Table '...' doesn't exist", error 1146).
	 * Columns are what mysqlcommonconnection.php createTable() and mysqlcommonsqlhelper.php
	 * getColumnTypeByField() make of the fields: every column NOT NULL, IntegerField `int`
	 * (signed 32 bits), TextField `text` (65,535 bytes), StringField `varchar(255)`. A value
	 * that does not fit throws, as MySQL does in strict mode (and NULL always, error 1048);
	 * without strict mode MySQL would cut the value silently, which is worse.
	 * getAffectedRowsCount() is mysqli's affected_rows: rows whose values CHANGED (Bitrix does
	 * not set CLIENT_FOUND_ROWS), so an UPDATE that matches a row but writes the same values
	 * counts 0.
	 */
	final class Connection
	{
		private static $instance;
		/** name => ['fields' => [name => Field], 'primary' => [..], 'auto' => next id, 'rows' => [id => row]] */
		public $tables = [];
		/** name => [index name => columns] */
		public $indexes = [];
		private $affected = 0;
		/** @var callable|null fn(string $sql): void, runs before each queryExecute (tests interleave) */
		public $beforeQuery = null;
		/** @var callable|null fn(string $sql): void, runs after each queryExecute */
		public $afterQuery = null;

		public static function instance()
		{
			return self::$instance ?? (self::$instance = new self());
		}

		public static function reset()
		{
			self::$instance = new self();
		}

		public function getSqlHelper()
		{
			return new SqlHelper();
		}

		public function isTableExists($tableName)
		{
			return isset($this->tables[strtolower($tableName)]);
		}

		/** connection.php createTable($tableName, $fields, $primary = [], $autoincrement = []) */
		public function createTable($tableName, $fields, $primary = [], $autoincrement = [])
		{
			$name = strtolower($tableName);
			if (isset($this->tables[$name])) {
				throw new SqlQueryException("Table '" . $tableName . "' already exists");
			}
			$this->tables[$name] = ['fields' => $fields, 'primary' => $primary, 'auto' => 1, 'rows' => []];
		}

		public function dropTable($tableName)
		{
			$this->table($tableName);
			unset($this->tables[strtolower($tableName)], $this->indexes[strtolower($tableName)]);
		}

		public function createIndex($tableName, $indexName, $columnNames)
		{
			$table = $this->table($tableName);
			foreach ((array)$columnNames as $c) {
				if (!isset($table['fields'][$c])) {
					throw new SqlQueryException("Key column '" . $c . "' doesn't exist in table");
				}
			}
			$this->indexes[strtolower($tableName)][$indexName] = (array)$columnNames;
		}

		/** @return array the table's state, by reference; throws when it does not exist */
		public function &table($tableName)
		{
			$name = strtolower($tableName);
			if (!isset($this->tables[$name])) {
				throw new SqlQueryException("Mysql query error: (1146) Table 'sitemanager." . $tableName . "' doesn't exist");
			}
			return $this->tables[$name];
		}

		public function getAffectedRowsCount()
		{
			return $this->affected;
		}

		/** Throws when $value does not fit the column made of $field (see the class comment). */
		public static function checkColumn($field, $value)
		{
			$name = $field->getName();
			if ($value === null) {
				if ($field->isAutocomplete()) {
					return;
				}
				throw new SqlQueryException("Mysql query error: (1048) Column '" . $name . "' cannot be null");
			}
			if ($field instanceof \Bitrix\Main\ORM\Fields\IntegerField) {
				if (!is_numeric($value) || (int)$value < -2147483648 || (int)$value > 2147483647) {
					throw new SqlQueryException("Mysql query error: (1264) Out of range value for column '" . $name . "'");
				}
			} elseif ($field instanceof \Bitrix\Main\ORM\Fields\TextField) {
				if (strlen((string)$value) > 65535) {
					throw new SqlQueryException("Mysql query error: (1406) Data too long for column '" . $name . "'");
				}
			} elseif ($field instanceof \Bitrix\Main\ORM\Fields\StringField) {
				if (mb_strlen((string)$value, 'UTF-8') > 255) {
					throw new SqlQueryException("Mysql query error: (1406) Data too long for column '" . $name . "'");
				}
			}
		}

		public function setAffectedRowsCount(int $n)
		{
			$this->affected = $n;
		}

		/**
		 * Understands one statement only, the shape of a compare-and-set:
		 *   UPDATE `t` SET `A` = 1, `B` = 2 WHERE `C` = 3 AND `D` = 4     (integer values)
		 * and throws on anything else, so that the module cannot lean on SQL the stand-in
		 * would get wrong. One statement is atomic, as a single-row UPDATE is in InnoDB.
		 */
		public function queryExecute($sql, array $binds = null)
		{
			if ($this->beforeQuery) {
				($this->beforeQuery)($sql);
			}
			$pair = '`\w+` = -?\d+';
			if (!preg_match('/^UPDATE `(?<table>\w+)` SET (?<set>(?:' . $pair . ', )*' . $pair . ') WHERE (?<where>(?:'
				. $pair . ' AND )*' . $pair . ')$/', $sql, $m)) {
				throw new SqlQueryException('the stand-in does not understand: ' . $sql);
			}
			$table = &$this->table($m['table']);
			$set = $this->pairs($m['set'], $table);
			foreach ($set as $col => $value) {
				self::checkColumn($table['fields'][$col], $value);
			}
			$where = $this->pairs($m['where'], $table);
			$changed = 0;
			foreach ($table['rows'] as $id => $row) {
				foreach ($where as $col => $value) {
					if ((string)$row[$col] !== (string)$value) {
						continue 2;
					}
				}
				$new = array_merge($row, $set);
				if ($new != $row) {
					$table['rows'][$id] = $new;
					$changed++;
				}
			}
			$this->affected = $changed;
			if ($this->afterQuery) {
				$after = $this->afterQuery;
				$affected = $this->affected;
				$after($sql);
				$this->affected = $affected; // what the caller asks for is its own statement's count
			}
		}

		private function pairs(string $text, array $table): array
		{
			preg_match_all('/`(\w+)` = (-?\d+)/', $text, $m, PREG_SET_ORDER);
			$out = [];
			foreach ($m as [, $col, $value]) {
				if (!isset($table['fields'][$col])) {
					throw new SqlQueryException("Unknown column '" . $col . "'");
				}
				$out[$col] = (int)$value;
			}
			return $out;
		}
	}
}

namespace Bitrix\Main\ORM\Fields {

	/**
	 * main/lib/orm/fields/scalarfield.php: a column; 'primary', 'autocomplete', 'required' and
	 * 'default_value' are the parameters the module uses.
	 */
	abstract class ScalarField
	{
		protected $name;
		protected $params;

		public function __construct($name, $parameters = [])
		{
			$this->name = $name;
			$this->params = $parameters;
		}

		public function getName()
		{
			return $this->name;
		}

		public function isPrimary()
		{
			return !empty($this->params['primary']);
		}

		public function isAutocomplete()
		{
			return !empty($this->params['autocomplete']);
		}

		public function isRequired()
		{
			return !empty($this->params['required']);
		}

		public function getDefaultValue()
		{
			$d = $this->params['default_value'] ?? null;
			return is_callable($d) ? $d() : $d;
		}
	}

	class IntegerField extends ScalarField
	{
	}

	/** main/lib/orm/fields/stringfield.php: 'size' is the column's VARCHAR length. */
	class StringField extends ScalarField
	{
	}

	class TextField extends StringField
	{
	}

	/** Values are Bitrix\Main\Type\DateTime objects, in rows, filters and results. */
	class DatetimeField extends ScalarField
	{
	}
}

namespace Bitrix\Main\ORM {

	/**
	 * main/lib/orm/entity.php: Entity::getInstance($class) and createDbTable(), which calls
	 * $connection->createTable($this->getDBTableName(), $fields, $this->getPrimaryArray(),
	 * $autoincrement) with the columns of getMap().
	 */
	final class Entity
	{
		private static $instances = [];
		private $class;

		public static function getInstance($class)
		{
			$class = ltrim($class, '\\');
			return self::$instances[$class] ?? (self::$instances[$class] = new self($class));
		}

		private function __construct($class)
		{
			$this->class = $class;
		}

		public function getDBTableName()
		{
			return ($this->class)::getTableName();
		}

		/** @return \Bitrix\Main\ORM\Fields\ScalarField[] by name */
		public function getFields()
		{
			$fields = [];
			foreach (($this->class)::getMap() as $field) {
				$fields[$field->getName()] = $field;
			}
			return $fields;
		}

		public function getPrimaryArray()
		{
			return array_keys(array_filter($this->getFields(), function ($f) {
				return $f->isPrimary();
			}));
		}

		public function createDbTable()
		{
			$fields = $this->getFields();
			$auto = array_keys(array_filter($fields, function ($f) {
				return $f->isAutocomplete();
			}));
			\Bitrix\Main\Application::getConnection()->createTable($this->getDBTableName(), $fields,
				$this->getPrimaryArray(), $auto);
		}
	}
}

namespace Bitrix\Main\ORM\Query {

	/** main/lib/orm/query/result.php: fetch() one row or false; fetchAll() the rest. */
	class Result
	{
		private $rows;

		public function __construct(array $rows)
		{
			$this->rows = $rows;
		}

		public function fetch()
		{
			return $this->rows ? array_shift($this->rows) : false;
		}

		public function fetchAll()
		{
			$rows = $this->rows;
			$this->rows = [];
			return $rows;
		}
	}
}

namespace Bitrix\Main\ORM\Data {

	use Bitrix\Main\Application;
	use Bitrix\Main\ArgumentException;
	use Bitrix\Main\ORM\Entity;
	use Bitrix\Main\ORM\Fields\DatetimeField;
	use Bitrix\Main\ORM\Fields\ScalarField;

	/** main/lib/orm/data/result.php */
	class Result extends \Bitrix\Main\Result
	{
	}

	/** main/lib/orm/data/addresult.php: getId() of the new row. */
	class AddResult extends Result
	{
	}

	/**
	 * main/lib/orm/data/updateresult.php: getAffectedRowsCount() is the connection's after the
	 * UPDATE (DataManager::update calls $result->setAffectedRowsCount($connection)).
	 */
	class UpdateResult extends Result
	{
		private $affectedRowsCount;

		public function setAffectedRowsCount($connection)
		{
			$this->affectedRowsCount = $connection->getAffectedRowsCount();
		}

		public function getAffectedRowsCount()
		{
			return $this->affectedRowsCount;
		}
	}

	class DeleteResult extends Result
	{
	}

	/**
	 * main/lib/orm/data/datamanager.php over the in-memory connection:
	 *  - getList(['select', 'filter', 'order', 'limit', 'offset']): filter keys carry their
	 *    operator, '=' (an array value: IN), '!=' / '!', '<', '<=', '>', '>=', '@' (IN); a key
	 *    without one, 'LOGIC' or sub-filters are not understood and throw (the ORM reads a bare
	 *    key differently by field type, which the module must not rely on). Unknown fields
	 *    throw, as the ORM's "Unknown field definition" does. Rows come back with scalars as
	 *    strings (what mysqli gives; some ORM versions cast integers, so the module casts
	 *    itself) and datetimes as DateTime objects (mysqlcommonsqlhelper.php converters).
	 *  - add($data): unknown field throws; a missing required field is an error Result and
	 *    nothing is added; an autocomplete primary is assigned; a value that does not fit its
	 *    column (NULL included) throws SqlQueryException, as the INSERT would.
	 *  - update($primary, $data): the WHERE is the primary only (datamanager.php builds
	 *    "UPDATE ... WHERE ID = ?"); the Result's affected rows follow mysqli (changed rows).
	 *  - delete($primary), getCount($filter).
	 */
	abstract class DataManager
	{
		abstract public static function getTableName();

		abstract public static function getMap();

		public static function getEntity()
		{
			return Entity::getInstance(static::class);
		}

		/** The stored rows, by primary; OrderTable's stand-in overrides this with sale's orders. */
		protected static function &storedRows()
		{
			$table = &Application::getConnection()->table(static::getTableName());
			return $table['rows'];
		}

		protected static function nextId()
		{
			$table = &Application::getConnection()->table(static::getTableName());
			return $table['auto']++;
		}

		public static function getList(array $parameters = [])
		{
			foreach (array_keys($parameters) as $key) {
				if (!in_array($key, ['select', 'filter', 'order', 'limit', 'offset'], true)) {
					throw new ArgumentException('Unknown parameter: ' . $key);
				}
			}
			$fields = static::getEntity()->getFields();
			$rows = array_values(array_filter(static::storedRows(), function ($row) use ($parameters, $fields) {
				return self::matches($row, $parameters['filter'] ?? [], $fields);
			}));
			$rows = self::sorted($rows, $parameters['order'] ?? [], $fields);
			$rows = array_slice($rows, (int)($parameters['offset'] ?? 0),
				isset($parameters['limit']) ? (int)$parameters['limit'] : null);
			$select = $parameters['select'] ?? ['*'];
			$out = [];
			foreach ($rows as $row) {
				$out[] = self::selected($row, $select, $fields);
			}
			return new \Bitrix\Main\ORM\Query\Result($out);
		}

		public static function getCount($filter = [])
		{
			$fields = static::getEntity()->getFields();
			return count(array_filter(static::storedRows(), function ($row) use ($filter, $fields) {
				return self::matches($row, $filter, $fields);
			}));
		}

		public static function add(array $data)
		{
			$fields = static::getEntity()->getFields();
			self::checkKnown($data, $fields);
			$result = new AddResult();
			foreach ($fields as $name => $field) {
				if (!array_key_exists($name, $data) && $field->getDefaultValue() !== null) {
					$data[$name] = $field->getDefaultValue();
				}
				if ($field->isRequired() && !$field->isAutocomplete()
					&& (!isset($data[$name]) || $data[$name] === '')) {
					$result->addError(new \Bitrix\Main\Error('Field "' . $name . '" is required'));
				}
			}
			if (!$result->isSuccess()) {
				return $result;
			}
			$rows = &static::storedRows();
			$row = [];
			foreach ($fields as $name => $field) {
				$row[$name] = $data[$name] ?? null;
				\Bitrix\Main\DB\Connection::checkColumn($field, $row[$name]);
			}
			$id = $row['ID'] ?? static::nextId();
			$row['ID'] = $id;
			$rows[$id] = $row;
			$result->setId($id);
			return $result;
		}

		public static function update($primary, array $data)
		{
			$fields = static::getEntity()->getFields();
			self::checkKnown($data, $fields);
			$id = is_array($primary) ? self::primaryOnly($primary) : $primary;
			$rows = &static::storedRows();
			$result = new UpdateResult();
			$connection = Application::getConnection();
			$changed = 0;
			foreach ($data as $name => $value) {
				\Bitrix\Main\DB\Connection::checkColumn($fields[$name], $value);
			}
			if (isset($rows[$id])) {
				$new = array_merge($rows[$id], $data);
				if (self::normalized($new) != self::normalized($rows[$id])) {
					$rows[$id] = $new;
					$changed = 1;
				}
			}
			$connection->setAffectedRowsCount($changed);
			$result->setAffectedRowsCount($connection);
			$result->setId($id);
			return $result;
		}

		public static function delete($primary)
		{
			$id = is_array($primary) ? self::primaryOnly($primary) : $primary;
			$rows = &static::storedRows();
			unset($rows[$id]);
			return new DeleteResult();
		}

		/** datamanager.php validatePrimary: the primary array names the primary field only. */
		private static function primaryOnly(array $primary)
		{
			if (array_keys($primary) !== ['ID']) {
				throw new ArgumentException('Unknown primary: ' . implode(', ', array_keys($primary)));
			}
			return $primary['ID'];
		}

		private static function checkKnown(array $data, array $fields): void
		{
			foreach (array_keys($data) as $name) {
				if (!isset($fields[$name])) {
					throw new ArgumentException('Unknown field definition `' . $name . '`');
				}
			}
		}

		private static function normalized(array $row): array
		{
			return array_map(function ($v) {
				return is_object($v) && method_exists($v, 'getTimestamp') ? $v->getTimestamp()
					: ($v === null ? null : (string)$v);
			}, $row);
		}

		/** A value as MySQL compares it: datetimes by moment, numbers as numbers, else text. */
		private static function comparable($value)
		{
			if (is_object($value) && method_exists($value, 'getTimestamp')) {
				return $value->getTimestamp();
			}
			return is_bool($value) ? (int)$value : $value;
		}

		private static function compare($a, $b): int
		{
			$a = self::comparable($a);
			$b = self::comparable($b);
			if (is_numeric($a) && is_numeric($b)) {
				return $a <=> $b;
			}
			return strcmp((string)$a, (string)$b);
		}

		private static function matches(array $row, array $filter, array $fields): bool
		{
			foreach ($filter as $key => $value) {
				if (!is_string($key) || !preg_match('/^(=|!=|!|<=|>=|<|>|@)([A-Z_][A-Z0-9_]*)$/', $key, $m)) {
					throw new ArgumentException('the stand-in does not understand the filter key ' . var_export($key, true));
				}
				[, $op, $name] = $m;
				if (!isset($fields[$name])) {
					throw new ArgumentException('Unknown field definition `' . $name . '`');
				}
				$have = $row[$name] ?? null;
				if (is_array($value) || $op === '@') {
					$in = false;
					foreach ((array)$value as $v) {
						$in = $in || ($have !== null && self::compare($have, $v) === 0);
					}
					$ok = ($op === '!' || $op === '!=') ? !$in : $in;
				} elseif ($value === null) {
					$ok = ($op === '=') ? $have === null : (($op === '!' || $op === '!=') ? $have !== null : false);
				} elseif ($have === null) {
					$ok = false; // NULL compared with a value is never true in SQL
				} else {
					$c = self::compare($have, $value);
					$ok = ['=' => $c === 0, '!=' => $c !== 0, '!' => $c !== 0, '<' => $c < 0, '<=' => $c <= 0,
						'>' => $c > 0, '>=' => $c >= 0][$op];
				}
				if (!$ok) {
					return false;
				}
			}
			return true;
		}

		private static function sorted(array $rows, array $order, array $fields): array
		{
			foreach ($order as $name => $dir) {
				if (!isset($fields[$name])) {
					throw new ArgumentException('Unknown field definition `' . $name . '`');
				}
				if (!in_array(strtoupper($dir), ['ASC', 'DESC'], true)) {
					throw new ArgumentException('Invalid order direction ' . $dir);
				}
			}
			usort($rows, function ($a, $b) use ($order) {
				foreach ($order as $name => $dir) {
					$c = self::compare($a[$name], $b[$name]);
					if ($c !== 0) {
						return strtoupper($dir) === 'DESC' ? -$c : $c;
					}
				}
				return 0;
			});
			return $rows;
		}

		private static function selected(array $row, array $select, array $fields): array
		{
			$names = $select === ['*'] ? array_keys($fields) : $select;
			$out = [];
			foreach ($names as $name) {
				if (!isset($fields[$name])) {
					throw new ArgumentException('Unknown field definition `' . $name . '`');
				}
				$v = $row[$name] ?? null;
				$out[$name] = ($v === null || $fields[$name] instanceof DatetimeField) ? $v : (string)$v;
			}
			return $out;
		}
	}
}

namespace Bitrix\Sale\Internals {

	use Bitrix\Main\ORM\Fields\DatetimeField;
	use Bitrix\Main\ORM\Fields\IntegerField;
	use Bitrix\Main\ORM\Fields\StringField;

	/**
	 * sale/lib/internals/order.php: the D7 table of b_sale_order, which Order::getList()
	 * (sale/lib/orderbase.php) queries. Here a view over the stand-in's saved orders
	 * (\Bitrix\Sale\Order::$saved), read-only.
	 */
	class OrderTable extends \Bitrix\Main\ORM\Data\DataManager
	{
		public static function getTableName()
		{
			return 'b_sale_order';
		}

		public static function getMap()
		{
			return [
				new IntegerField('ID', ['primary' => true, 'autocomplete' => true]),
				new StringField('LID'),
				new IntegerField('PERSON_TYPE_ID'),
				new StringField('STATUS_ID'),
				new DatetimeField('DATE_INSERT'),
				new DatetimeField('DATE_UPDATE'),
			];
		}

		protected static function &storedRows()
		{
			$rows = [];
			foreach (\Bitrix\Sale\Order::$saved as $id => $order) {
				$rows[$id] = ['ID' => $id, 'LID' => $order->getField('LID'),
					'PERSON_TYPE_ID' => $order->getField('PERSON_TYPE_ID'), 'STATUS_ID' => $order->getField('STATUS_ID'),
					'DATE_INSERT' => $order->getField('DATE_INSERT'), 'DATE_UPDATE' => $order->getField('DATE_UPDATE')];
			}
			ksort($rows);
			return $rows;
		}

		public static function add(array $data)
		{
			throw new \LogicException('the stand-in OrderTable is read-only: save an Order');
		}
	}
}

namespace {

	/** main/classes/general/main.php: what ThrowException stores and GetException returns. */
	class CApplicationException
	{
		public $msg;
		public $id;

		public function __construct($msg, $id = false)
		{
			$this->msg = $msg;
			$this->id = $id;
		}

		public function GetString()
		{
			return $this->msg;
		}

		public function GetID()
		{
			return $this->id;
		}
	}

	/** Thrown where CMain::IncludeAdminFile() calls die(): nothing after it runs. */
	final class AdminPageDied extends \Exception
	{
	}

	/**
	 * main/classes/general/main.php, the parts an installer uses:
	 *  - ThrowException($msg, $id) replaces the last exception (ResetException first);
	 *    GetException() returns it or false;
	 *  - IncludeAdminFile($title, $path) sets the title, includes the admin prolog, the file
	 *    and the epilog with every global in scope, then die()s. Here the file's output is
	 *    kept in $pages and AdminPageDied is thrown instead of die().
	 */
	class CMain
	{
		public $LAST_ERROR = false;
		/** [['title' => ..., 'file' => basename, 'html' => output], ...] */
		public $pages = [];

		public function ThrowException($msg, $id = false)
		{
			$this->ResetException();
			$this->LAST_ERROR = $msg instanceof CApplicationException ? $msg : new CApplicationException($msg, $id);
		}

		public function GetException()
		{
			return $this->LAST_ERROR;
		}

		public function ResetException()
		{
			$this->LAST_ERROR = false;
		}

		public function GetCurPage()
		{
			return '/bitrix/admin/partner_modules.php';
		}

		public function SetTitle($title)
		{
		}

		public function IncludeAdminFile($strTitle, $filepath)
		{
			foreach (array_keys($GLOBALS) as $key) {
				if (!in_array($key, ['GLOBALS', 'strTitle', 'filepath'], true)) {
					global ${$key};
				}
			}
			ob_start();
			try {
				include $filepath;
			} finally {
				$this->pages[] = ['title' => $strTitle, 'file' => basename($filepath), 'html' => ob_get_clean()];
			}
			throw new AdminPageDied('die() after ' . basename($filepath));
		}
	}

	/**
	 * main/interface/admin_lib.php CAdminMessage: a message is a string (an error) or
	 * ['TYPE' => 'ERROR'|'OK', 'MESSAGE', 'DETAILS', 'HTML' => bool]; without HTML the texts are
	 * escaped. ShowMessage/ShowNote echo; Show() returns the markup.
	 */
	class CAdminMessage
	{
		private $message;

		public function __construct($message, $exception = false)
		{
			$this->message = is_array($message) ? $message : ['MESSAGE' => $message, 'TYPE' => 'ERROR'];
			if ($exception instanceof CApplicationException) {
				$this->message['DETAILS'] = $exception->GetString();
			}
		}

		public function Show()
		{
			$m = $this->message;
			$esc = function ($s) use ($m) {
				return !empty($m['HTML']) ? (string)$s : htmlspecialchars((string)$s, ENT_QUOTES);
			};
			return '<div class="adm-info-message-' . (($m['TYPE'] ?? 'ERROR') === 'OK' ? 'green' : 'red') . '">'
				. '<span class="adm-info-message-title">' . $esc($m['MESSAGE'] ?? '') . '</span>'
				. ($esc($m['DETAILS'] ?? '') !== '' ? '<br>' . $esc($m['DETAILS']) : '') . '</div>';
		}

		public static function ShowMessage($message)
		{
			echo (new self($message))->Show();
		}

		public static function ShowNote($message)
		{
			self::ShowMessage(['MESSAGE' => $message, 'TYPE' => 'OK']);
		}
	}

	$GLOBALS['APPLICATION'] = new CMain();

	const ORM_TEST_SESSID = 'f00dfeedf00dfeedf00dfeedf00dfeed';

	/** main/tools.php: the session's CSRF token; check_bitrix_sessid() compares $_REQUEST['sessid']. */
	function bitrix_sessid()
	{
		return ORM_TEST_SESSID;
	}

	function check_bitrix_sessid($varname = 'sessid')
	{
		return ($_REQUEST[$varname] ?? '') === bitrix_sessid();
	}

	function bitrix_sessid_post($varname = 'sessid')
	{
		return '<input type="hidden" name="' . $varname . '" value="' . bitrix_sessid() . '">';
	}

	if (!function_exists('htmlspecialcharsbx')) {
		function htmlspecialcharsbx($string, $flags = ENT_COMPAT)
		{
			return htmlspecialchars((string)$string, $flags, 'UTF-8');
		}
	}

	if (!defined('LANGUAGE_ID')) {
		define('LANGUAGE_ID', 'en');
	}

	/** A fresh, empty database and admin page state for each test. */
	function orm_fresh_state(): void
	{
		\Bitrix\Main\DB\Connection::reset();
		$GLOBALS['APPLICATION'] = new CMain();
	}
}
