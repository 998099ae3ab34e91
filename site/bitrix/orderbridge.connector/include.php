<?php
/*
 * orderbridge module entry point: Bitrix includes it on Loader::includeModule('orderbridge.connector')
 * and before calling any of the module's registered event handlers or agents.
 * It only maps the module's classes to files; nothing here runs on its own.
 */

\Bitrix\Main\Loader::registerAutoLoadClasses('orderbridge.connector', [
	'\Orderbridge\AdminOrderBlock' => 'lib/AdminOrderBlock.php',
	'\Orderbridge\Agent' => 'lib/Agent.php',
	'\Orderbridge\Backfill' => 'lib/Backfill.php',
	'\Orderbridge\Config' => 'lib/Config.php',
	'\Orderbridge\Deal' => 'lib/Deal.php',
	'\Orderbridge\EventHandlers' => 'lib/EventHandlers.php',
	'\Orderbridge\Log' => 'lib/Log.php',
	'\Orderbridge\OrderProperty' => 'lib/OrderProperty.php',
	'\Orderbridge\Queue' => 'lib/Queue.php',
	'\Orderbridge\QueueTable' => 'lib/QueueTable.php',
	'\Orderbridge\Relay' => 'lib/Relay.php',
	'\Orderbridge\Signature' => 'lib/Signature.php',
	'\Orderbridge\Snapshot' => 'lib/Snapshot.php',
	'\Orderbridge\StatusEndpoint' => 'lib/StatusEndpoint.php',
	'\Orderbridge\Transport' => 'lib/Transport.php',
	'\Orderbridge\Visit' => 'lib/Visit.php',
]);
