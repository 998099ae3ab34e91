<?php
/*
 * Small stand-ins for the parts of 1C-Bitrix that the orderbridge module touches, so that
 * the module runs under plain php-cli. They mimic the behaviour the module relies on and
 * nothing more: Order::save() fires OnSaleOrderBeforeSaved, OnSaleOrderSaved, then the
 * "special" events (status, paid, canceled), through EventManager, which — like Bitrix's —
 * lets a handler's exception propagate to whoever saved the order.
 */

namespace Bitrix\Main {

	final class Loader
	{
		/** module id => folder; the tests point "orderbridge" at site/bitrix/orderbridge */
		public static $moduleDirs = [];
		private static $classes = [];

		public static function registerAutoLoadClasses($module, array $classes)
		{
			foreach ($classes as $class => $file) {
				self::$classes[strtolower(ltrim($class, '\\'))] = self::$moduleDirs[$module] . '/' . $file;
			}
			static $registered = false;
			if (!$registered) {
				$registered = true;
				spl_autoload_register(function ($class) {
					$file = self::$classes[strtolower(ltrim($class, '\\'))] ?? null;
					if ($file !== null) {
						require_once $file;
					}
				});
			}
		}

		public static function includeModule($module)
		{
			return true;
		}
	}

	class Event
	{
		private $moduleId;
		private $type;
		private $parameters;

		public function __construct($moduleId, $type, array $parameters = [])
		{
			$this->moduleId = $moduleId;
			$this->type = $type;
			$this->parameters = $parameters;
		}

		public function getParameter($key)
		{
			return $this->parameters[$key] ?? null;
		}

		public function getParameters()
		{
			return $this->parameters;
		}

		public function getEventType()
		{
			return $this->type;
		}

		/** Runs the registered handlers; exceptions are not caught, as in Bitrix. */
		public function send()
		{
			foreach (EventManager::getInstance()->handlersFor($this->moduleId, $this->type) as $h) {
				call_user_func([$h['class'], $h['method']], $this);
			}
		}
	}

	final class EventManager
	{
		private static $instance;
		/** persistent registrations, as in b_module_to_module */
		public $registered = [];

		public static function getInstance()
		{
			return self::$instance ?? (self::$instance = new self());
		}

		public function registerEventHandler($fromModule, $event, $toModule, $class = '', $method = '')
		{
			$this->registered[] = ['from' => $fromModule, 'event' => $event, 'to' => $toModule,
				'class' => $class, 'method' => $method];
		}

		public function unRegisterEventHandler($fromModule, $event, $toModule, $class = '', $method = '')
		{
			$this->registered = array_values(array_filter($this->registered,
				function ($r) use ($fromModule, $event, $toModule, $class, $method) {
					return !($r['from'] === $fromModule && $r['event'] === $event && $r['to'] === $toModule
						&& $r['class'] === $class && $r['method'] === $method);
				}));
		}

		public function handlersFor($module, $event)
		{
			return array_values(array_filter($this->registered, function ($r) use ($module, $event) {
				return strcasecmp($r['from'], $module) === 0 && strcasecmp($r['event'], $event) === 0;
			}));
		}
	}

	final class ModuleManager
	{
		public static $installed = ['main' => true, 'sale' => true];

		public static function isModuleInstalled($id)
		{
			return !empty(self::$installed[$id]);
		}

		public static function registerModule($id)
		{
			self::$installed[$id] = true;
		}

		public static function unRegisterModule($id)
		{
			unset(self::$installed[$id]);
		}
	}

	/** The list-of-rows result of a D7 getList, and the result of an add. */
	class Result
	{
		private $rows;
		private $id;
		private $errors;

		public function __construct(array $rows = [], $id = null, array $errors = [])
		{
			$this->rows = $rows;
			$this->id = $id;
			$this->errors = $errors;
		}

		public function fetch()
		{
			return array_shift($this->rows) ?: false;
		}

		public function getId()
		{
			return $this->id;
		}

		public function isSuccess()
		{
			return !$this->errors;
		}

		public function getErrorMessages()
		{
			return $this->errors;
		}
	}
}

namespace Bitrix\Main\Config {

	final class Option
	{
		public static $values = [];

		public static function get($module, $name, $default = '')
		{
			return self::$values[$module][$name] ?? $default;
		}

		public static function set($module, $name, $value)
		{
			self::$values[$module][$name] = (string)$value;
		}

		public static function delete($module, array $filter = [])
		{
			unset(self::$values[$module]);
		}
	}
}

namespace Bitrix\Main\Localization {

	final class Loc
	{
		public static function loadMessages($file)
		{
		}

		public static function getMessage($code, $replace = null)
		{
			return $code;
		}
	}
}

namespace Bitrix\Main\Type {

	/** Bitrix's DateTime: a moment, read here through getTimestamp() only. */
	class DateTime
	{
		private $ts;

		public function __construct($time = null)
		{
			$this->ts = $time === null ? time() : (new \DateTimeImmutable($time))->getTimestamp();
		}

		public function getTimestamp()
		{
			return $this->ts;
		}
	}
}

namespace Bitrix\Sale {

	use Bitrix\Main\Event;
	use Bitrix\Main\Result;
	use Bitrix\Main\Type\DateTime;

	class PropertyValue
	{
		public $fields;
		private $value;

		/** $fields: CODE, ORDER_PROPS_ID and the flags IS_PAYER / IS_PHONE / IS_EMAIL */
		public function __construct(array $fields, $value = '')
		{
			$this->fields = $fields;
			$this->value = $value;
		}

		public function getValue()
		{
			return $this->value;
		}

		public function setValue($value)
		{
			$this->value = $value;
		}

		public function getField($name)
		{
			return $this->fields[$name] ?? null;
		}
	}

	class PropertyValueCollection implements \IteratorAggregate
	{
		private $items;

		public function __construct(array $items)
		{
			$this->items = $items;
		}

		public function getIterator(): \Iterator
		{
			return new \ArrayIterator($this->items);
		}

		public function getItemByOrderPropertyCode($code)
		{
			foreach ($this->items as $item) {
				if ($item->getField('CODE') === $code) {
					return $item;
				}
			}
			return null;
		}

		private function byFlag($flag)
		{
			foreach ($this->items as $item) {
				if ($item->getField($flag) === 'Y') {
					return $item;
				}
			}
			return null;
		}

		public function getPayerName()
		{
			return $this->byFlag('IS_PAYER');
		}

		public function getPhone()
		{
			return $this->byFlag('IS_PHONE');
		}

		public function getUserEmail()
		{
			return $this->byFlag('IS_EMAIL');
		}
	}

	class BasketItem
	{
		private $fields;

		/** PRODUCT_ID, NAME, PRICE (float, as Bitrix returns it), QUANTITY, SET_PARENT_ID */
		public function __construct(array $fields)
		{
			$this->fields = $fields;
		}

		public function getProductId()
		{
			return $this->fields['PRODUCT_ID'];
		}

		public function getField($name)
		{
			return $this->fields[$name] ?? null;
		}

		public function getPrice()
		{
			return $this->fields['PRICE'];
		}

		public function getQuantity()
		{
			return $this->fields['QUANTITY'];
		}

		public function isBundleChild()
		{
			return !empty($this->fields['SET_PARENT_ID']);
		}
	}

	class Basket implements \IteratorAggregate
	{
		private $items;

		public function __construct(array $items)
		{
			$this->items = $items;
		}

		public function getIterator(): \Iterator
		{
			return new \ArrayIterator($this->items);
		}
	}

	class Order
	{
		/** id => Order, what Order::load() finds */
		public static $saved = [];
		private static $nextId = 100;

		private $fields;
		private $props;
		private $basket;
		private $changed = [];

		public function __construct(array $fields, array $props, array $basketItems)
		{
			$this->fields = $fields + ['ID' => 0, 'STATUS_ID' => 'N', 'CANCELED' => 'N', 'PAYED' => 'N',
				'CURRENCY' => 'RUB', 'PERSON_TYPE_ID' => 1];
			$this->props = new PropertyValueCollection($props);
			$this->basket = new Basket($basketItems);
		}

		public static function load($id)
		{
			return self::$saved[$id] ?? null;
		}

		public function getId()
		{
			return (int)$this->fields['ID'];
		}

		public function isNew()
		{
			return $this->getId() === 0;
		}

		public function getField($name)
		{
			return $this->fields[$name] ?? null;
		}

		public function setField($name, $value)
		{
			if (($this->fields[$name] ?? null) !== $value) {
				$this->changed[$name] = $this->fields[$name] ?? null;
				$this->fields[$name] = $value;
			}
			return new Result();
		}

		public function getPersonTypeId()
		{
			return $this->fields['PERSON_TYPE_ID'];
		}

		public function getPrice()
		{
			return $this->fields['PRICE'];
		}

		public function getCurrency()
		{
			return $this->fields['CURRENCY'];
		}

		public function isPaid()
		{
			return $this->fields['PAYED'] === 'Y';
		}

		public function isCanceled()
		{
			return $this->fields['CANCELED'] === 'Y';
		}

		public function getPropertyCollection()
		{
			return $this->props;
		}

		public function getBasket()
		{
			return $this->basket;
		}

		/** The order of events of Bitrix\Sale\OrderBase::save(). */
		public function save()
		{
			$isNew = $this->isNew();
			(new Event('sale', 'OnSaleOrderBeforeSaved', ['ENTITY' => $this, 'VALUES' => $this->changed]))->send();
			if ($isNew) {
				$this->fields['ID'] = self::$nextId++;
				$this->fields['DATE_INSERT'] = $this->fields['DATE_INSERT'] ?? new DateTime();
			}
			$this->fields['DATE_UPDATE'] = new DateTime();
			self::$saved[$this->getId()] = $this;
			$changed = $this->changed;
			$this->changed = [];
			(new Event('sale', 'OnSaleOrderSaved', ['ENTITY' => $this, 'IS_NEW' => $isNew, 'VALUES' => $changed]))->send();
			if (array_key_exists('STATUS_ID', $changed)) {
				(new Event('sale', 'OnSaleStatusOrderChange', ['ENTITY' => $this,
					'VALUE' => $this->fields['STATUS_ID'], 'OLD_VALUE' => $changed['STATUS_ID']]))->send();
			}
			if (array_key_exists('PAYED', $changed)) {
				(new Event('sale', 'OnSaleOrderPaid', ['ENTITY' => $this]))->send();
			}
			if (array_key_exists('CANCELED', $changed)) {
				(new Event('sale', 'OnSaleOrderCanceled', ['ENTITY' => $this]))->send();
			}
			return new Result();
		}
	}

	final class OrderStatus
	{
		public static function getAllStatusesNames()
		{
			return ['N' => 'Accepted', 'P' => 'Paid', 'F' => 'Completed'];
		}
	}
}

namespace Bitrix\Sale\Internals {

	use Bitrix\Main\Result;

	/** Tables as arrays of rows; getList understands '=FIELD' filters only. */
	abstract class FakeTable
	{
		public static $rows = [];

		public static function getList(array $params = [])
		{
			$rows = array_values(array_filter(static::$rows[static::class] ?? [], function ($row) use ($params) {
				foreach ($params['filter'] ?? [] as $key => $value) {
					if ((string)($row[ltrim($key, '=')] ?? '') !== (string)$value) {
						return false;
					}
				}
				return true;
			}));
			return new Result($rows);
		}

		public static function add(array $fields)
		{
			$fields['ID'] = count(static::$rows[static::class] ?? []) + 1;
			static::$rows[static::class][] = $fields;
			return new Result([], $fields['ID']);
		}
	}

	final class PersonTypeTable extends FakeTable
	{
	}

	final class OrderPropsTable extends FakeTable
	{
	}

	final class OrderPropsGroupTable extends FakeTable
	{
	}
}

namespace {

	class CModule
	{
	}

	final class CAgent
	{
		public static $agents = [];

		public static function AddAgent($name, $module = '', $period = 'N', $interval = 86400)
		{
			self::$agents[] = ['name' => $name, 'module' => $module, 'interval' => $interval];
			return count(self::$agents);
		}

		public static function RemoveModuleAgents($module)
		{
			self::$agents = array_values(array_filter(self::$agents, function ($a) use ($module) {
				return $a['module'] !== $module;
			}));
		}
	}

	/** The old API writes to the same table as the D7 one. */
	final class CSaleOrderProps
	{
		public static function Add(array $fields)
		{
			return \Bitrix\Sale\Internals\OrderPropsTable::add($fields)->getId();
		}
	}
}
